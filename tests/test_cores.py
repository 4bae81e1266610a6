"""voxprompt shares the cores: it sees how many other processes keep busy and gives llama.cpp fewer
threads meanwhile (threads that wait on a core someone else holds slow every step)."""
import subprocess
import sys
import time

import pytest

from voxprompt.cores import OtherLoad


def test_a_busy_process_elsewhere_counts_and_our_own_work_does_not():
    load = OtherLoad()
    end = time.monotonic() + 0.6
    while time.monotonic() < end:  # this process, busy
        pass
    assert load.cores() < 0.5
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # past its start-up
        load.cores()
        time.sleep(0.6)
        assert load.cores() > 0.6
    finally:
        busy.kill()
        busy.wait()


def test_one_thread_gives_the_same_transcript_as_all(transcriber, recording_audio):
    t = transcriber
    segment = next(t.segments(iter([recording_audio])))
    every = t.llm.threads  # one per physical core
    whole = t.transcribe_segment(segment).tokens
    t.llm.set_threads(1)
    try:
        assert t.llm.threads == 1
        assert t.transcribe_segment(segment).tokens == whole
    finally:
        t.llm.set_threads(every)


def test_llama_cpp_decodes_with_a_thread_fewer_while_another_process_holds_a_core(transcriber, recording_audio):
    t = transcriber
    most = t.llm.threads
    if most < 2:
        pytest.skip("one core: no thread to give back")
    segment = next(t.segments(iter([recording_audio])))
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # past its start-up and the load's window
        t.transcribe_segment(segment)
        assert t.llm.threads < most
    finally:
        busy.kill()
        busy.wait()
        t.llm.set_threads(most)
