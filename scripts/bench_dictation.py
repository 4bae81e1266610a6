#!/usr/bin/env python3
"""Dictation latency through a real audio stack: utterances (2-8 s real recordings) are played into a
PulseAudio null sink and recorded by PortAudio, as from a microphone.

    python scripts/bench_dictation.py [--utterances 12] [--model DIR] [--beam 4] [--threads 0] [--loads idle core transcribe]

Each load is a row: `idle`; `core`, one CPU core kept busy by another process; `transcribe`, a
`voxprompt transcribe` of a long recording running beside dictation on the same cores. Prints a table:
utterances finalised, end-of-speech -> final text latency (median, p95), first-partial latency (from the
start of playback), and the process's CPU use while the microphone hears only silence (idle only);
the process's peak RSS above it.
"""
from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from audio_env import play, start_virtual_microphone, stop_virtual_microphone  # noqa: E402
from benchmark import peak_rss_mb  # noqa: E402

from voxprompt.audio import SAMPLE_RATE, load_audio  # noqa: E402

SOUNDS = Path("/usr/share/asterisk/sounds/en")


def utterances(n: int) -> list[np.ndarray]:
    names = [line.split(":", 1)[0] for line in gzip.open(
        "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz", "rt", errors="replace") if ":" in line]
    clips = []
    for name in sorted(set(names)):
        path = SOUNDS / f"{name}.wav"
        if path.exists() and not name.startswith("silence/"):
            audio = load_audio(path)
            if 2.0 <= len(audio) / SAMPLE_RATE <= 8.0:
                clips.append(audio)
    rng = np.random.default_rng(0)
    return [clips[i] for i in rng.choice(len(clips), size=min(n, len(clips)), replace=False)]


def start_load(kind: str, work: Path) -> subprocess.Popen | None:
    """Another process on the same machine, as a user's laptop has them."""
    if kind == "idle":
        return None
    if kind == "core":
        return subprocess.Popen([sys.executable, "-c", "while True: pass"])
    long = work / "long.wav"
    if not long.exists():
        pause = np.zeros(SAMPLE_RATE, np.float32)
        sf.write(long, np.concatenate([x for clip in utterances(40) for x in (clip, pause)] * 4), SAMPLE_RATE)
    loop = f'while true; do "{sys.executable}" -m voxprompt transcribe "{long}" --quiet >/dev/null 2>&1; done'
    proc = subprocess.Popen(["bash", "-c", loop], start_new_session=True)
    time.sleep(8)  # past its model load: transcribing
    return proc


def stop_load(proc: subprocess.Popen | None) -> None:
    if proc is not None:
        os.killpg(proc.pid, 9) if proc.args[0] == "bash" else proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=12)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--beam", type=int, default=4, help="hypotheses kept per segment (1: greedy)")
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: one per physical core)")
    parser.add_argument("--loads", nargs="+", default=["idle", "core", "transcribe"],
                        choices=["idle", "core", "transcribe"])
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vp-bench-"))
    env = start_virtual_microphone(work / "pulse")
    os.environ["XDG_RUNTIME_DIR"] = env["XDG_RUNTIME_DIR"]
    from voxprompt.dictation import DictationEngine, Final, Partial
    from voxprompt.export.default_model import ensure_default_model
    from voxprompt.llm import LlmOptions
    from voxprompt.microphone import Microphone, find_device
    from voxprompt.transcriber import Transcriber

    transcriber = Transcriber(args.model or ensure_default_model(log=lambda *_: None),
                              llm_options=LlmOptions(beam_size=args.beam, n_threads=args.threads))
    events = []
    lock = threading.Lock()

    def on_event(e):
        with lock:
            events.append((time.monotonic(), e))

    mic = Microphone(find_device("pulse")).start()
    engine = DictationEngine(transcriber, mic, on_event).start()
    time.sleep(2.0)
    clips = utterances(args.utterances)
    rows = []
    for load in args.loads:
        silent_cpu = None
        if load == "idle":  # CPU while silent: nothing plays, the null sink's monitor delivers zeros
            cpu0, wall0 = time.process_time(), time.monotonic()
            time.sleep(10.0)
            silent_cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        other = start_load(load, work)
        finals, first_partials = [], []
        try:
            for i, clip in enumerate(clips):
                wav = work / f"u{i}.wav"
                sf.write(wav, np.concatenate([clip, np.zeros(int(1.5 * SAMPLE_RATE), np.float32)]), SAMPLE_RATE)
                with lock:
                    events.clear()
                started = time.monotonic()
                play(wav, env).wait()
                for _ in range(100):  # a final may come late under load: wait up to 10 s more for it
                    with lock:
                        if any(isinstance(e, Final) for _, e in events):
                            break
                    time.sleep(0.1)
                time.sleep(0.5)
                with lock:
                    got = list(events)
                partials = [t for t, e in got if isinstance(e, Partial)]
                done = [e for _, e in got if isinstance(e, Final)]
                if done:
                    finals.append(done[0].latency_ms)
                if partials:
                    first_partials.append((partials[0] - started) * 1000)
        finally:
            stop_load(other)
        rows.append((load, finals, first_partials, silent_cpu))
        print(f"done: {load}", file=sys.stderr)
    engine.stop()
    mic.stop()
    stop_virtual_microphone(env)
    print(f"{len(clips)} utterances per load; {os.cpu_count()} CPUs; {transcriber.describe_devices()}; "
          f"beam {args.beam}; peak RSS of this process (model, microphone, engine) {peak_rss_mb():.0f} MB\n")
    print("| load | finals | end of speech -> final ms (median, p95) | playback -> first partial ms (median, p95) "
          "| CPU while silent (cores) |\n|---|---|---|---|---|")
    stat = lambda xs: f"{np.median(xs):.0f}, {np.percentile(xs, 95):.0f}" if xs else "-"
    names = {"idle": "idle", "core": "one core busy", "transcribe": "beside `voxprompt transcribe`"}
    for load, finals, partials, cpu in rows:
        print(f"| {names[load]} | {len(finals)}/{len(clips)} | {stat(finals)} | {stat(partials)} | "
              f"{'-' if cpu is None else f'{cpu:.3f}'} |")


if __name__ == "__main__":
    main()
