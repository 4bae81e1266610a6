#!/usr/bin/env python3
"""How fast could any decoding of this model be? The floor under every decoding strategy, beside what
`voxprompt transcribe` takes and faster-whisper tiny.en, on the same files.

    python scripts/bench_floor.py [--files 12] [--rounds 2]

The floor keeps only what no strategy can skip: each segment encoded, its speech prompt read by the LLM,
and one LLM row per transcript token, the rows of FILE_PARALLEL segments in one batch (what a perfect
draft, verified in one pass, would cost; the transcripts are the real run's). Beam search, CTC scoring
and streaming are left out. If the floor is above a target, no search or drafting trick reaches it: the
prompt (speech vectors per second) or the LLM's cost per row must shrink. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from benchmark import benchmark_files, run_faster_whisper


def floor_seconds(transcriber, audios: list[np.ndarray], transcripts: list[list[int]]) -> dict[str, float]:
    """Encoder, prompt and one row per token for the segments of `audios`, whose tokens are `transcripts`."""
    llm = transcriber.llm
    segments = [s for audio in audios for s in transcriber.segments(iter([audio]))]
    assert len(segments) == len(transcripts), "the segmentation differs from the transcription's"
    spent = {"encoder": 0.0, "prompt": 0.0, "tokens": 0.0}
    group = llm.n_seats // llm.beam_size
    for first in range(0, len(segments), group):
        feeds = []
        for seat, (segment, tokens) in enumerate(zip(segments[first:first + group], transcripts[first:first + group])):
            t0 = time.perf_counter()
            speech = transcriber.encoder(segment.framed())
            transcriber.scorer(speech)
            t1 = time.perf_counter()
            _, pos = llm.prefill(seat, speech)
            spent["encoder"] += t1 - t0
            spent["prompt"] += time.perf_counter() - t1
            feeds += [(seat, token, pos + i) for i, token in enumerate(tokens)]
        t0 = time.perf_counter()
        for start in range(0, len(feeds), llm.n_batch):
            llm.step(feeds[start:start + llm.n_batch])
        spent["tokens"] += time.perf_counter() - t0
        for seat in range(group):
            llm.release(seat)
    return spent


def main() -> None:
    from voxprompt.audio import load_audio
    from voxprompt.export.default_model import ensure_default_model
    from voxprompt.files import SegmentDone, transcribe_files
    from voxprompt.llm import FILE_PARALLEL, LlmOptions
    from voxprompt.transcriber import Transcriber

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=12, help="how many recordings (benchmark.py's longest first)")
    parser.add_argument("--rounds", type=int, default=2, help="each measurement this many times, interleaved: medians")
    args = parser.parse_args()
    files = [str(f) for f in benchmark_files(args.files)]
    audios = [load_audio(f) for f in files]
    seconds = sum(len(a) for a in audios) / 16000
    transcriber = Transcriber(ensure_default_model(log=lambda *_: None),
                              llm_options=LlmOptions(n_parallel=FILE_PARALLEL))
    walls: dict[str, list[float]] = {"voxprompt transcribe (default)": [], "floor": [], "faster-whisper": []}
    parts: list[dict[str, float]] = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        events = [e for e in transcribe_files(transcriber, files) if isinstance(e, SegmentDone)]
        # segments finish out of order (several in flight): back into file and time order, as segmented
        done = [e.segment for e in sorted(events, key=lambda e: (files.index(str(e.path)), e.segment.start))]
        walls["voxprompt transcribe (default)"].append(time.perf_counter() - t0)
        parts.append(floor_seconds(transcriber, audios, [s.tokens for s in done]))
        walls["floor"].append(sum(parts[-1].values()))
        walls["faster-whisper"].append(run_faster_whisper(files, 0)["wall_s"])
    n_tokens = sum(len(s.tokens) for s in done)
    print(f"{len(files)} real recordings, {seconds:.1f} s of audio, {len(done)} segments, {n_tokens} transcript "
          f"tokens; {args.rounds} rounds, medians\n")
    print("| what | wall s | RTF | vs faster-whisper tiny.en |\n|---|---|---|---|")
    fw = float(np.median(walls["faster-whisper"]))
    for name, values in walls.items():
        wall = float(np.median(values))
        print(f"| {name} | {wall:.1f} | {wall / seconds:.4f} | {wall / fw:.2f}x |")
    for part in ("encoder", "prompt", "tokens"):
        wall = float(np.median([p[part] for p in parts]))
        print(f"| floor: {part} | {wall:.1f} | {wall / seconds:.4f} | {wall / fw:.2f}x |")


if __name__ == "__main__":
    main()
