"""`voxprompt adapt`: a domain adapter for the default model, learnt from a user's text alone.

The text is spoken by the training voices (TTS, augmented as in training), a share of general sentences
is mixed in so that the rest of the language is not forgotten, and the LLM's LoRA is trained further on
it with the CTC head (the projector stays frozen: the LLM hears what it heard). What training changed is
written as an adapter that applies on top of the default model (whose own LoRA is merged into its
weights), at load, by llama.cpp, and as a shift of the CTC head's trained parts (ctc.CtcShift), which the
runtime adds while the adapter is applied. Measured (README): the head tuned too spells twice the terms.

Everything happens in the adapter's folder (`work/`: spoken shards, their frames, the training
checkpoint) and resumes where it stopped; the time budget counts all of it, resumed runs included.
"""
from __future__ import annotations

import json
import math
import random
import re
import shutil
import threading
import time
import os
from dataclasses import dataclass, replace
from pathlib import Path

from voxprompt.adapters import ADAPTER_CTC_FILE, ADAPTER_FILE, AdapterInfo

GENERAL_SHARE = 0.3  # of the spoken sentences: general ones, against forgetting (measured: README)
VOICES_PER_SENTENCE = 2  # each domain sentence spoken by this many training voices
MAX_EPOCHS = 4  # a fast machine stops here rather than learn the few sentences by heart
CTC_LR = 1e-4  # the CTC head's rate (README: frozen, the head alone, and the projector too, measured)
CTC_WEIGHT = 0.3  # its loss beside the LLM's, as in the default model's training
SHARD = 50  # utterances per shard: small, so an interrupted synthesis loses little
MAX_WORDS = 40

# Sentences that carry a term when the user gave only terms (or a term their text never uses).
CARRIERS = (
    "{t}.", "The next item is {t}.", "Please write down {t}.", "We talked about {t} this morning.",
    "Can you check the {t} again?", "I said {t}, not something else.", "{t} was mentioned twice in the notes.",
    "Add {t} to the list, please.", "The report mentions {t} on the second page.", "Did anyone order {t} today?",
)


def read_sentences(path: Path) -> list[str]:
    """The text's sentences, one line each, 2 to 40 words, in order, without repeats."""
    text = path.read_text(encoding="utf-8", errors="replace")
    seen, out = set(), []
    for line in text.splitlines():
        for sentence in re.split(r"(?<=[.!?])\s+", line.strip()):
            sentence = " ".join(sentence.split())
            if 2 <= len(sentence.split()) <= MAX_WORDS and sentence.lower() not in seen:
                seen.add(sentence.lower())
                out.append(sentence)
    return out


def read_terms(path: Path) -> list[str]:
    """One term per line (or comma-separated), without repeats; '#' starts a comment."""
    seen, out = set(), []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        for term in line.split("#", 1)[0].split(","):
            term = " ".join(term.split())
            if term and term.lower() not in seen:
                seen.add(term.lower())
                out.append(term)
    return out


def unknown_words(sentences: list[str], known: frozenset[str]) -> list[str]:
    """The words of `sentences` that a general word list lacks (the domain's own: drug names, jargon,
    product names), as first written, without repeats. `known`: lower-case words."""
    seen, out = set(), []
    for word in re.findall(r"[A-Za-z][A-Za-z0-9'-]*", " ".join(sentences)):
        word = re.sub(r"'s?$", "", word)
        if word.lower() in seen:
            continue
        seen.add(word.lower())
        if any(part not in known for part in re.split(r"[-']", word.lower()) if part.isalpha()):
            out.append(word)
    return out


def favoured_terms(plan: "AdaptPlan", log=print) -> tuple[str, ...]:
    """The adapter's terms, favoured in the search wherever it is applied: those given, then the words
    of the domain's sentences that Debian's `wamerican` list lacks."""
    from voxprompt.models.games import Dictionary

    try:
        known = Dictionary.load().words
    except SystemExit as missing:  # the adapter is still worth making: only the given terms are favoured
        log(f"{missing}: only --terms are favoured in the search")
        return tuple(plan.terms)
    merged: dict[str, str] = {}
    for term in [*plan.terms, *unknown_words(plan.domain, known)]:
        merged.setdefault(term.lower(), term)  # a given term keeps its spelling
    return tuple(merged.values())


def carrier_sentences(terms: list[str], sentences: list[str], per_term: int, seed: int) -> list[str]:
    """`per_term` sentences around each term that none of `sentences` contains."""
    r = random.Random(seed)
    said = " ".join(sentences).lower()
    out = []
    for term in terms:
        if re.search(rf"\b{re.escape(term.lower())}\b", said):
            continue
        for carrier in r.sample(CARRIERS, min(per_term, len(CARRIERS))):
            sentence = carrier.format(t=term)
            if term.islower() or not sentence.startswith(term):  # "iPhone" stays as written
                sentence = sentence[0].upper() + sentence[1:]
            out.append(sentence)
    return out


@dataclass(frozen=True)
class AdaptPlan:
    """What `adapt` will speak and train on, decided before any work starts."""

    domain: list[str]  # the user's sentences and the carriers of their terms
    general: list[str]
    terms: list[str]
    minutes: float

    @property
    def spoken(self) -> list[str]:
        """Every utterance to synthesise: each domain sentence by several voices, then the general ones."""
        return [s for s in self.domain for _ in range(VOICES_PER_SENTENCE)] + self.general

    def steps(self, batch: int) -> int:
        return max(10, math.ceil(MAX_EPOCHS * len(self.spoken) / batch))

    def describe(self) -> str:
        return (f"{len(self.domain)} domain sentences ({len(self.terms)} terms) x {VOICES_PER_SENTENCE} voices + "
                f"{len(self.general)} general: {len(self.spoken)} utterances to speak; then training until "
                f"{self.minutes:.0f} minutes in all (at most {MAX_EPOCHS} passes)")


def make_plan(text: Path | None, terms: Path | None, minutes: float, seed: int = 0) -> AdaptPlan:
    from voxprompt.models.corpus import training_texts

    sentences = read_sentences(text) if text else []
    term_list = read_terms(terms) if terms else []
    domain = sentences + carrier_sentences(term_list, sentences, per_term=4 if sentences else 6, seed=seed)
    if not domain:
        raise ValueError("no sentences (2-40 words) or terms in the files given; give --text and/or --terms")
    n_general = math.ceil(GENERAL_SHARE / (1 - GENERAL_SHARE) * len(domain) * VOICES_PER_SENTENCE)
    general = training_texts(n_general, seed=seed + 7000, exclude=set(domain))
    return AdaptPlan(domain, general, term_list, minutes)


ADAPTED_PROJECTIONS: tuple[str, ...] = ()  # (): all of the model's LoRA projections


class _Budget:
    """Wall time spent on this adapter, kept in work/spent.json so a resumed run spends only the rest."""

    def __init__(self, work: Path, minutes: float):
        self.path, self.minutes = work / "spent.json", minutes
        self.before = json.loads(self.path.read_text())["seconds"] if self.path.exists() else 0.0
        self.started = time.monotonic()

    @property
    def spent(self) -> float:
        return self.before + time.monotonic() - self.started

    def save(self) -> None:
        self.path.write_text(json.dumps({"seconds": self.spent}))

    def left_minutes(self) -> float:
        return self.minutes - self.spent / 60


def adapt(name: str, text: Path | None, terms: Path | None, out_root: Path, base_id: str, minutes: float = 20.0,
          threads: int = 0, seed: int = 0, log=print, projections: tuple[str, ...] = ADAPTED_PROJECTIONS,
          layers: int = 0) -> Path:
    """Make (or finish making) the adapter `name` in out_root/name; returns its folder. `projections`:
    the LLM's LoRA projections that learn, `layers`: in its last this many layers (0: all); each one
    adapted costs llama.cpp graph nodes per token."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from voxprompt.ctc import spelled_words
    from voxprompt.export.default_model import TRAINED_DIR, trained_adapter_path, trained_config_path
    from voxprompt.models.augment import AugmentOptions
    from voxprompt.models.dataset import _Synthetic, build_split
    from voxprompt.models.train import TrainConfig, Trainer
    from voxprompt.models.tts import TRAIN_VOICES

    folder = out_root / name
    work = folder / "work"
    work.mkdir(parents=True, exist_ok=True)
    plan = make_plan(text, terms, minutes, seed)
    log(f"adapter {name}: {plan.describe()}")
    budget = _Budget(work, minutes)
    base = json.loads(trained_config_path().read_text())
    kept = ("encoder", "stack", "ctc_upsample", "projector_hidden", "encoder_top_blocks", "lora_rank", "lora_alpha",
            "lora_targets")
    config = TrainConfig(
        **{k: (tuple(base[k]) if k == "lora_targets" else base[k]) for k in kept if k in base},
        splits="train", stage1_steps=0, stage2_steps=plan.steps(8), stage2_batch=8, bucket_window=0.1,
        stage2_lr=0.0, ctc_lr=CTC_LR, encoder_lr=0.0, ctc_weight=CTC_WEIGHT, lora_lr=2e-4, warmup=10, eval_every=10**9,
        checkpoint_every=20, init_from=str(TRAINED_DIR), seed=seed, threads=threads, lora_trained=tuple(projections),
        lora_layers=layers)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f}"),
                  TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("speaking", total=len(plan.spoken))
        build_split(work / "data", "train", plan.spoken, _Synthetic(TRAIN_VOICES, seed, AugmentOptions(p_telephone=0.1)),
                    progress=lambda n: bar.advance(task, n), workers=min(2, os.cpu_count() or 1), shard_size=SHARD)
        budget.save()
        left = budget.left_minutes()
        if left < 2:
            raise TimeoutError(f"the {minutes:.0f}-minute budget went on speaking the text; give more --minutes "
                               "(the spoken text is kept: run the same command again)")
        bar.update(task, description="training (seconds)", completed=0, total=int(left * 60))
        stop = threading.Event()

        def tick():
            while not stop.wait(1.0):
                bar.advance(task, 1)
                budget.save()

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            run = work / "run"
            # the deadline counts the model's loading too; half a minute is kept for the export
            Trainer(replace(config, deadline_minutes=max(0.5, left - 0.5)), work / "data", run,
                    log=bar.console.print).run()
        finally:
            stop.set()
            ticker.join()
            budget.save()
    from voxprompt.ctc import CtcShift
    from voxprompt.export.merge_lora import lora_difference
    from voxprompt.export.default_model import trained_ctc_path
    from voxprompt.models.ctc_head import CtcHeadWeights

    history = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else []
    if not history or not history[-1]["step"]:
        raise TimeoutError(f"the {minutes:.0f}-minute budget ran out before training began (a busy machine?); "
                           "run the same command again with more --minutes: what was done is kept")
    tmp = folder / (ADAPTER_FILE + ".partial")
    lora_difference(trained_adapter_path(config.encoder), run / f"lora-{config.encoder}.gguf", tmp)
    tmp.replace(folder / ADAPTER_FILE)
    shift = CtcShift.between(CtcHeadWeights.load(trained_ctc_path(config.encoder)),
                             CtcHeadWeights.load(run / f"ctc-{config.encoder}.npz"))
    shift.save(folder / (ADAPTER_CTC_FILE + ".partial"))
    (folder / (ADAPTER_CTC_FILE + ".partial")).replace(folder / ADAPTER_CTC_FILE)
    vocabulary = tuple(sorted(spelled_words(" ".join([*plan.domain, *plan.terms]))))
    AdapterInfo(name, base_id, sentences=len(plan.domain), terms=favoured_terms(plan, log), vocabulary=vocabulary,
                minutes=round(budget.spent / 60, 1),
                provenance={"text": str(text or ""), "terms": str(terms or ""), "general": str(len(plan.general)),
                            "steps": str(history[-1]["step"]), "layers": str(layers or "all"),
                            "projections": ",".join(projections) or "all", "ctc_lr": str(CTC_LR)}).write(folder)
    shutil.rmtree(work, ignore_errors=True)  # spoken shards, frames, checkpoint: hundreds of MB, done with
    return folder
