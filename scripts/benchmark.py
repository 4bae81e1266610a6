#!/usr/bin/env python3
"""Speed and memory of voxprompt per LLM quantisation, beside faster-whisper tiny.en, on the same files.

    python scripts/benchmark.py [--files N] [--threads 0] [--quants q4_0 q8_0-merged f16] [--parallel 1 8] [--beam 1 4]
                                [--concat] [--model DIR ...] [--adapter DIR ...] [--rounds N]

Each system runs in its own process (so peak RSS is its own); model loading is timed apart from
transcription. `--parallel N` decodes N segments together (across files), as `voxprompt transcribe` does.
Real-time factor = transcription wall time / audio duration (lower is faster).
`--rounds N` runs every system N times, round after round: the table gives each system's median RTF, its
range, and its median ratio to the first row's RTF of the same round (a machine's speed drifts by ~5 % between
minutes here, which a single round cannot tell from a 5 % difference). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

SOUNDS = Path("/usr/share/asterisk/sounds/en")
TEXTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")


def transcripts() -> dict[str, str]:
    lines = (line.split(":", 1) for line in gzip.open(TEXTS, "rt", errors="replace") if ":" in line)
    return {name.strip(): text.strip() for name, text in lines}


def benchmark_files(n: int) -> list[Path]:
    """The n longest English prompts of the asterisk recordings (real speech, one speaker, 8 kHz)."""
    files = [SOUNDS / f"{name}.wav" for name in transcripts()
             if (SOUNDS / f"{name}.wav").exists() and not name.startswith("silence/")]
    files.sort(key=lambda p: (-p.stat().st_size, p.name))
    return files[:n]


def concatenate(files: list[str], out: Path) -> str:
    import numpy as np
    import soundfile as sf

    from voxprompt.audio import SAMPLE_RATE, load_audio

    pause = np.zeros(SAMPLE_RATE, np.float32)
    sf.write(out, np.concatenate([x for f in files for x in (load_audio(f), pause)]), SAMPLE_RATE)
    return str(out)


def peak_rss_mb() -> float:
    """VmHWM of this process (ru_maxrss would include the parent's pages from before exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_voxprompt(model_dir: str, files: list[str], threads: int, parallel: int, beam: int,
                  adapters: list[str] = (), fold_adapters: bool = True) -> dict:
    from voxprompt.audio import probe
    from voxprompt.encoder import EncoderOptions
    from voxprompt.files import SegmentDone, transcribe_files
    from voxprompt.llm import LlmOptions
    from voxprompt.transcriber import Transcriber

    t0 = time.perf_counter()
    transcriber = Transcriber(model_dir, EncoderOptions(n_threads=threads),
                              LlmOptions(n_threads=threads, n_parallel=parallel, beam_size=beam), adapters=adapters,
                              fold_adapters=fold_adapters)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    segments = [e.segment for e in transcribe_files(transcriber, files) if isinstance(e, SegmentDone)]
    wall = time.perf_counter() - t0
    encode_s = sum(s.timing.encode_ms for s in segments) / 1000
    prompt_s = sum(s.timing.prompt_ms for s in segments) / 1000
    n_tokens = sum(s.timing.n_tokens for s in segments)
    return {
        "load_s": load_s, "audio_s": sum(probe(f).duration for f in files), "wall_s": wall, "segments": len(segments),
        "encode_ms": encode_s * 1000 / len(segments), "prompt_ms": prompt_s * 1000 / len(segments),
        "tokens_per_s": n_tokens / wall,  # transcript tokens per second of wall time, all segments together
        "tokens_per_segment": n_tokens / len(segments),
        "devices": transcriber.describe_devices(),
    }


def run_faster_whisper(files: list[str], threads: int) -> dict:
    from faster_whisper import WhisperModel
    from voxprompt.audio import load_audio
    from voxprompt.llm import physical_cores
    from voxprompt.models.assets import whisper_asset

    t0 = time.perf_counter()
    model = WhisperModel(str(whisper_asset("tiny.en").model_bin.parent), device="cpu", compute_type="int8",
                         cpu_threads=threads or physical_cores())
    load_s = time.perf_counter() - t0
    audios = [load_audio(f) for f in files]  # decoding is not what is compared
    t0 = time.perf_counter()
    n_segments = 0
    for audio in audios:
        segments, _ = model.transcribe(audio, beam_size=1, temperature=0.0, condition_on_previous_text=False)
        n_segments += len(list(segments))
    wall = time.perf_counter() - t0
    return {"load_s": load_s, "audio_s": sum(len(a) for a in audios) / 16000, "wall_s": wall,
            "segments": n_segments}


def child(args) -> None:
    files = json.loads(args.child_files)
    if args.child == "faster-whisper":
        result = run_faster_whisper(files, args.threads)
    else:
        result = run_voxprompt(args.child, files, args.threads, args.parallel[0], args.beam[0], args.adapter,
                               not args.adapters_at_load)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def main() -> None:
    users_env = dict(os.environ)  # before voxprompt sets its thread defaults: faster-whisper runs as users run it
    from voxprompt.llm import FILE_PARALLEL
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=40, help="how many recordings (default 40)")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads (default 0: voxprompt's own choice, one per physical core and fewer while "
                             "other processes hold cores; faster-whisper one per physical core)")
    parser.add_argument("--quants", nargs="+", default=["q4_0", "q8_0-merged"],
                        help="LLM quantisations; QUANT-merged folds the LoRA adapter into the weights")
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, FILE_PARALLEL],
                        help=f"segments decoded together (a row for each; default: 1 {FILE_PARALLEL})")
    parser.add_argument("--beam", type=int, nargs="+", default=[4],
                        help="hypotheses kept per segment (a row for each; default: 4; 1 is greedy)")
    parser.add_argument("--concat", action="store_true",
                        help="join the recordings (1 s apart) into one long file, as a lecture or meeting")
    parser.add_argument("--encoder", default=None, help="Whisper tiny.en or base (default: the default model's)")
    parser.add_argument("--model", type=Path, action="append", default=[],
                        help="also a built model directory (repeatable), e.g. another training run's export")
    parser.add_argument("--adapter", action="append", default=[],
                        help="also the default model with this domain adapter (a folder from `voxprompt adapt`; "
                             "repeatable: a row for each, beside a row without)")
    parser.add_argument("--rounds", type=int, default=1, help="run every system this many times, interleaved")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--adapters-at-load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-files", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    import tempfile

    from voxprompt.export.default_model import DEFAULT_ENCODER, build_default_model

    args.encoder = args.encoder or DEFAULT_ENCODER
    files = [str(f) for f in benchmark_files(args.files)]
    work = Path(tempfile.mkdtemp(prefix="voxprompt-bench-"))
    if args.concat:
        files = [concatenate(files, work / "joined.wav")]
    systems = []
    for q in args.quants:
        quant, merged = q.removesuffix("-merged"), q.endswith("-merged")
        model = build_default_model(work / q, args.encoder, quant, log=lambda *_: None, merge_adapter=merged)
        for parallel in args.parallel:
            for beam in args.beam:
                label = (f"voxprompt {args.encoder} + SmolLM2 {quant} + LoRA {'merged' if merged else 'at load'}, "
                         f"{parallel} in parallel, beam {beam}")
                systems.append((label, str(model), parallel, beam, [], True))
                for adapter in args.adapter:  # as `voxprompt transcribe` runs it (folded), and applied at load
                    for how, fold in (("folded", True), ("at load", False)):
                        systems.append((f"{label}, adapter {Path(adapter).name} {how}", str(model), parallel, beam,
                                        [adapter], fold))
    for model in args.model:
        for parallel in args.parallel:
            for beam in args.beam:
                systems.append((f"{model.name} ({model}), {parallel} in parallel, beam {beam}", str(model), parallel,
                                beam, [], True))
    systems.append(("faster-whisper tiny.en int8 greedy", "faster-whisper", 1, 1, [], True))
    runs: dict[str, list[dict]] = {label: [] for label, *_ in systems}
    for round_ in range(args.rounds):
        for label, target, parallel, beam, adapters, fold in systems:
            out = subprocess.run([sys.executable, __file__, "--child", target, "--child-files", json.dumps(files),
                                  "--threads", str(args.threads), "--parallel", str(parallel), "--beam", str(beam),
                                  *[f"--adapter={a}" for a in adapters], *([] if fold else ["--adapters-at-load"])],
                                 capture_output=True, text=True, check=True,
                                 env=users_env if target == "faster-whisper" else None)
            runs[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"done: {label}" + (f" (round {round_ + 1} of {args.rounds})" if args.rounds > 1 else ""),
                  file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)

    import numpy as np

    rtf = {label: [r["wall_s"] / r["audio_s"] for r in rs] for label, rs in runs.items()}
    first = rtf[systems[0][0]]
    first_run = next(iter(runs.values()))[0]
    what = f"{args.files} real recordings joined into one file" if args.concat else f"{len(files)} real recordings"
    print(f"{what}, {first_run['audio_s']:.1f} s of audio; {args.threads or 'default'} threads; "
          f"{os.cpu_count()} CPUs; {first_run.get('devices', '')}"
          + (f"; {args.rounds} rounds: medians" if args.rounds > 1 else "") + "\n")
    many = args.rounds > 1
    print("| system | RTF |" + (" RTF range | vs first row |" if many else "")
          + " load s | encoder ms/seg | first text ms/seg | transcript tokens/s | tokens/seg | peak RSS MB |")
    print("|---|---|" + ("---|---|" if many else "") + "---|---|---|---|---|---|")
    for label, rs in runs.items():
        mid = lambda key: float(np.median([r[key] for r in rs])) if key in rs[0] else None
        fmt = lambda key, spec: format(mid(key), spec) if mid(key) is not None else "-"
        spread = (f" {min(rtf[label]):.4f}-{max(rtf[label]):.4f} | "
                  f"{np.median(np.array(rtf[label]) / np.array(first)):.3f} |") if many else ""
        print(f"| {label} | {np.median(rtf[label]):.4f} |{spread} {fmt('load_s', '.2f')} | {fmt('encode_ms', '.1f')} | "
              f"{fmt('prompt_ms', '.1f')} | {fmt('tokens_per_s', '.0f')} | {fmt('tokens_per_segment', '.1f')} | "
              f"{max(r['peak_rss_mb'] for r in rs):.0f} |")

if __name__ == "__main__":
    main()
