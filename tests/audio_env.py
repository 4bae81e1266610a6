"""A real microphone for tests: a PulseAudio null sink whose monitor PortAudio records from."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

SINK = "vmic"


def start_virtual_microphone(runtime_dir: Path) -> dict[str, str]:
    """Start (or reuse) a PulseAudio daemon with a null sink; returns the environment to use it."""
    if shutil.which("pulseaudio") is None:
        raise RuntimeError("pulseaudio is not installed: run scripts/install.sh")
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime_dir))
    runtime_dir.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
        subprocess.run(["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "-n",
                        "--load=module-native-protocol-unix", f"--load=module-null-sink sink_name={SINK}"],
                       env=env, check=True, capture_output=True)
        for _ in range(50):
            if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
    subprocess.run(["pactl", "set-default-source", f"{SINK}.monitor"], env=env, check=True)
    return env


def play(path: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(["paplay", "-d", SINK, str(path)], env=env)


def stop_virtual_microphone(env: dict[str, str]) -> None:
    subprocess.run(["pulseaudio", "--kill"], env=env, capture_output=True)
