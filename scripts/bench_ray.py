#!/usr/bin/env python3
"""Throughput of `voxprompt transcribe --ray` with 1 and 2 workers, beside a local run, on the same files.

    python scripts/bench_ray.py [--minutes 20] [--files 4] [--workers 1 2] [--threads 1] [--model DIR]

The audio: the asterisk prompts (real speech) joined with 1 s pauses into `--files` recordings of
`--minutes` in all. Each configuration transcribes all of them through the code `voxprompt transcribe`
runs (files.py locally, ray_batch.py on a local Ray cluster of this machine); model loading is timed
apart. Prints a Markdown table: wall time, real-time factor, audio minutes per minute, speed-up over
one worker.
"""
from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from voxprompt.audio import SAMPLE_RATE, load_audio

SOUNDS = Path("/usr/share/asterisk/sounds/en")
TEXTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")


def make_files(folder: Path, minutes: float, n_files: int) -> list[Path]:
    names = sorted({line.split(":", 1)[0] for line in gzip.open(TEXTS, "rt", errors="replace") if ":" in line})
    clips = [load_audio(SOUNDS / f"{n}.wav") for n in names if (SOUNDS / f"{n}.wav").exists() and "/" not in n]
    pause = np.zeros(SAMPLE_RATE, np.float32)
    per_file = minutes * 60 * SAMPLE_RATE / n_files
    paths, k = [], 0
    for i in range(n_files):
        parts, total = [], 0
        while total < per_file:
            parts += [clips[k % len(clips)], pause]
            total += len(clips[k % len(clips)]) + len(pause)
            k += 1
        path = folder / f"part{i}.wav"
        sf.write(path, np.concatenate(parts), SAMPLE_RATE)
        paths.append(path)
    return paths


def drain(events) -> int:
    from voxprompt.files import SegmentDone

    return sum(isinstance(e, SegmentDone) for e in events)


def run_local(model: Path, paths: list[Path], threads: int) -> tuple[float, float, int]:
    from voxprompt.files import transcribe_files
    from voxprompt.llm import FILE_PARALLEL
    from voxprompt.transcriber import Transcriber

    t0 = time.perf_counter()
    transcriber = Transcriber.open(model, threads=threads, parallel=FILE_PARALLEL)
    t1 = time.perf_counter()
    segments = drain(transcribe_files(transcriber, paths))
    t2 = time.perf_counter()
    transcriber.close()
    return t1 - t0, t2 - t1, segments


def run_ray(model: Path, paths: list[Path], workers: int, threads: int) -> tuple[float, float, int]:
    from voxprompt.ray_batch import RayTranscription, WorkerOptions

    t0 = time.perf_counter()
    engine = RayTranscription(model, WorkerOptions(str(model), threads=threads), workers)
    t1 = time.perf_counter()
    segments = drain(engine.files(paths))
    t2 = time.perf_counter()
    engine.close()
    return t1 - t0, t2 - t1, segments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=1, help="per Ray worker")
    parser.add_argument("--local-threads", type=int, default=2)
    parser.add_argument("--model", type=Path)
    args = parser.parse_args()
    from voxprompt.export.default_model import ensure_default_model

    model = args.model or ensure_default_model()
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_files(Path(tmp), args.minutes, args.files)
        audio_min = sum(sf.info(p).duration for p in paths) / 60
        print(f"{len(paths)} files, {audio_min:.1f} min of audio\n")
        print("| run | processes x threads | model load, s | transcription, s | real-time factor | audio min / min | speed-up |")
        print("|---|---|---|---|---|---|---|")
        base = None
        rows = [("local (files.py)", 1, args.local_threads, lambda: run_local(model, paths, args.local_threads))]
        rows += [(f"--ray, {w} worker{'s' * (w > 1)}", w, args.threads,
                  lambda w=w: run_ray(model, paths, w, args.threads)) for w in args.workers]
        for name, procs, threads, run in rows:
            load, wall, _ = run()
            speed = audio_min / (wall / 60)
            if name.startswith("--ray") and base is None:
                base = wall
            up = f"{base / wall:.2f}x" if name.startswith("--ray") else "-"
            print(f"| {name} | {procs} x {threads} | {load:.1f} | {wall:.1f} | {wall / (audio_min * 60):.3f} | "
                  f"{speed:.1f} | {up} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
