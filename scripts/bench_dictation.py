#!/usr/bin/env python3
"""Dictation latency through a real audio stack: utterances (2-8 s real recordings) are played into a
PulseAudio null sink and recorded by PortAudio, as from a microphone.

    python scripts/bench_dictation.py [--utterances 20] [--model DIR] [--beam 4]

Prints a table: end-of-speech -> final text latency (median, p95), first-partial latency (from the start
of speech), and the process's CPU use while the microphone hears only silence.
"""
from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from audio_env import play, start_virtual_microphone, stop_virtual_microphone  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=20)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--beam", type=int, default=4, help="hypotheses kept per segment (1: greedy)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vp-bench-"))
    env = start_virtual_microphone(work / "pulse")
    os.environ["XDG_RUNTIME_DIR"] = env["XDG_RUNTIME_DIR"]
    from voxprompt.dictation import DictationEngine, Final, Partial
    from voxprompt.export.default_model import ensure_default_model
    from voxprompt.microphone import Microphone, find_device
    from voxprompt.llm import LlmOptions
    from voxprompt.transcriber import Transcriber

    transcriber = Transcriber(args.model or ensure_default_model(log=lambda *_: None),
                              llm_options=LlmOptions(beam_size=args.beam))
    events = []
    lock = threading.Lock()

    def on_event(e):
        with lock:
            events.append((time.monotonic(), e))

    mic = Microphone(find_device("pulse")).start()
    engine = DictationEngine(transcriber, mic, on_event).start()
    time.sleep(2.0)

    # CPU while silent: nothing plays, the null sink's monitor delivers zeros.
    cpu0, wall0 = time.process_time(), time.monotonic()
    time.sleep(10.0)
    silent_cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)

    finals, first_partials = [], []
    for i, clip in enumerate(utterances(args.utterances)):
        wav = work / f"u{i}.wav"
        sf.write(wav, np.concatenate([clip, np.zeros(int(1.5 * SAMPLE_RATE), np.float32)]), SAMPLE_RATE)
        with lock:
            events.clear()
        started = time.monotonic()
        play(wav, env).wait()
        time.sleep(1.0)
        with lock:
            got = list(events)
        partials = [t for t, e in got if isinstance(e, Partial)]
        done = [e for _, e in got if isinstance(e, Final)]
        if done:
            finals.append(done[0].latency_ms)
        if partials:
            first_partials.append((partials[0] - started) * 1000)
    engine.stop()
    mic.stop()
    stop_virtual_microphone(env)
    print(f"{len(finals)} of {args.utterances} utterances finalised; {os.cpu_count()} CPUs; "
          f"{transcriber.describe_devices()}\n")
    print("| measure | median | p95 |\n|---|---|---|")
    print(f"| end of speech -> final text (ms) | {np.median(finals):.0f} | {np.percentile(finals, 95):.0f} |")
    print(f"| start of playback -> first partial (ms) | {np.median(first_partials):.0f} | "
          f"{np.percentile(first_partials, 95):.0f} |")
    print(f"| CPU while silent (cores) | {silent_cpu:.3f} | |")


if __name__ == "__main__":
    main()
