"""Ctrl-C and SIGTERM are never dropped, wherever the main thread is when they come."""
import subprocess
import sys

import pytest

PROGRAM = """
import ctypes, os, signal, threading, time
from voxprompt.signals import StopRequested, StopSignals, register_callback

def slow(x):  # as llama.cpp's log callback: C calling Python
    time.sleep(0.3)
    return 0

if {registered}:
    register_callback(slow)
callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(slow)
with StopSignals() as signals:
    threading.Timer(0.1, os.kill, (os.getpid(), signal.{name})).start()
    try:
        {where}
        for _ in range(100):
            time.sleep(0.01)
        print("lost")
    except StopRequested as stop:
        print("stopped", stop.exit_code)
"""


def run(registered: bool, where: str, name: str = "SIGTERM") -> str:
    code = PROGRAM.format(registered=registered, where=where, name=name)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30).stdout.strip()


@pytest.mark.parametrize("name,code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_inside_a_c_callback_is_raised_once_out_of_it(name, code):
    assert run(False, "callback(1)", name) == "lost"  # what Python does on its own
    assert run(True, "callback(1)", name) == f"stopped {code}"


def test_a_signal_during_held_work_is_raised_when_it_ends():
    assert run(True, "with signals.held(): time.sleep(0.3)") == "stopped 143"
    assert run(True, "with signals.held(raise_after=False): time.sleep(0.3)") == "lost"
