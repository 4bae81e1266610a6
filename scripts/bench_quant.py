#!/usr/bin/env python3
"""What each LLM quantisation costs and gives: file size, load time, tokens/s, logit drift against f16.

    python scripts/bench_quant.py [--files 8] [--threads 2] [--nue-hidden 256]

Two models: the default one (Whisper tiny.en + SmolLM2-135M) and a tiny random model in the paper's
Nue-ASR layout (HuBERT + bridge + GPT-NeoX, built here as the tests build it). For each quantisation the
same encoder vectors are decoded; drift is measured teacher-forced along f16's own greedy transcript:
the largest |logit - f16 logit| and how often the quantised model's top token agrees with f16's.
Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from voxprompt.decoding import generate

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

QUANTS = ("f16", "q8_0", "q4_k_m", "q4_0")


def build_models(kind: str, work: Path, nue_hidden: int) -> dict[str, Path]:
    out = {}
    if kind == "default":
        from voxprompt.export.default_model import build_default_model

        for q in QUANTS:
            out[q] = build_default_model(work / f"default-{q}", quant=q, log=lambda m: None)
    else:
        from nue_asr_checkpoint import make_checkpoint
        from voxprompt.export.nue_asr import export_nue_asr

        checkpoint = make_checkpoint(work / "nue-asr-tiny", seed=1, llm_hidden=nue_hidden)
        for q in QUANTS:
            out[q] = export_nue_asr(checkpoint, work / f"nue-{q}", quant=q, log=lambda m: None)
    return out


def measure(models: dict[str, Path], clips: list[np.ndarray], threads: int) -> list[dict]:
    from voxprompt.encoder import EncoderOptions
    from voxprompt.llm import LlmOptions, RepetitionGuard
    from voxprompt.transcriber import Transcriber

    rows = []
    f16_tokens: list[list[int]] = []
    f16_logits: list[np.ndarray] = []
    for q, model_dir in models.items():  # f16 first: the reference
        t0 = time.perf_counter()
        t = Transcriber(model_dir, EncoderOptions(n_threads=threads), LlmOptions(n_threads=threads, beam_size=1))
        load_s = time.perf_counter() - t0
        t.llm.guard = RepetitionGuard(max_period=0)  # loops are part of what a quantisation does
        n_tokens, gen_s = 0, 0.0
        drift, agree, steps = 0.0, 0, 0
        for i, clip in enumerate(clips):
            speech = t.encoder(clip)
            t0 = time.perf_counter()
            tokens = [p.token for p in generate(t.llm, speech, t.manifest.token_bound(len(clip) / 16000))]
            gen_s += time.perf_counter() - t0
            n_tokens += len(tokens)
            if q == "f16":
                f16_tokens.append(tokens)
            logits = t.llm.forced_logits(speech, f16_tokens[i])  # along f16's transcript
            if q == "f16":
                f16_logits.append(logits)
            drift = max(drift, float(np.abs(logits - f16_logits[i]).max()))
            agree += int((logits.argmax(1) == f16_logits[i].argmax(1)).sum())
            steps += len(logits)
        rows.append({"quant": q, "size_mb": (model_dir / t.manifest.llm.file).stat().st_size / 2**20,
                     "load_s": load_s, "tok_s": n_tokens / max(gen_s, 1e-9), "drift": drift,
                     "top1": agree / max(steps, 1)})
        t.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--nue-hidden", type=int, default=256, help="LLM width of the tiny Nue-ASR-layout model")
    args = parser.parse_args()

    from benchmark import benchmark_files
    from voxprompt.audio import load_audio

    clips = [load_audio(f)[: 15 * 16000] for f in benchmark_files(args.files)]  # within both encoders' limits
    print(f"{len(clips)} real recordings, {sum(len(c) for c in clips) / 16000:.1f} s, {args.threads} threads\n")
    print("| model | quant | GGUF MB | load s | tokens/s (prompt included) | max abs logit drift vs f16 | top-1 agreement |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("default", "nue-asr-tiny"):
            models = build_models(kind, Path(tmp), args.nue_hidden)
            for r in measure(models, clips, args.threads):
                print(f"| {kind} | {r['quant']} | {r['size_mb']:.1f} | {r['load_s']:.2f} | {r['tok_s']:.0f} | "
                      f"{r['drift']:.3f} | {100 * r['top1']:.1f} % |", flush=True)


if __name__ == "__main__":
    main()
