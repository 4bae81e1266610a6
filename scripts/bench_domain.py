#!/usr/bin/env python3
"""Domain vocabulary: a text-only adapter and a context prompt against Whisper's hotwords and initial prompt.

    python scripts/bench_domain.py [--terms 40] [--minutes 20] [--general-data data] [--work bench-domain]
                                   [--projections q_proj,v_proj] [--layers 8]

The domain is medicine: `--terms` words drawn (seeded) from Debian's `hunspell-en-med` word list, 8-14
letters, none in the general English list (`wamerican`). Training text: each term in sentences made from
TRAIN_TEMPLATES (about 200 sentences), given to `voxprompt adapt` as a user's text file. Test clips: each
term in sentences from TEST_TEMPLATES (no sentence shared with training) spoken by the held-out
synthetic voices (HELD_OUT, which no training run has heard). Context and hotwords, two ways: the whole
term list, as a user would pass it for a session (`--hotwords "a, b, ..."`), and 8 terms per clip (its own
among 7 others, as training prompts carry contexts), for voxprompt and faster-whisper alike.

Prints, for each system: WER on the test clips (95 % interval) and term recall (the share of clips whose
term appears, spelled exactly, in the transcript). With `--general-data` (a corpus folder from
`python -m voxprompt.models.dataset --games`), also the adapter's and the context's effect on general
speech: held-out game characters (`game_dev`) and the asterisk prompts never trained on (`real_dev`).
Everything is cached in `--work`: a run started again reuses the adapter, the clips and finished rows
(the adapter and the rows per base model: a new default model trains and scores its own).
"""
from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

DICTIONARY = Path("/usr/share/hunspell/en_med_glut.dic")  # hunspell-en-med
ENGLISH = Path("/usr/share/dict/words")  # wamerican

TRAIN_TEMPLATES = (
    "The patient was started on {t} last week.", "We discussed {t} at the morning meeting.",
    "Her chart mentions {t} twice.", "Please add {t} to the discharge summary.", "The resident asked about {t}.",
    "There is no sign of {t} on the scan.", "He has a history of {t}.", "Order a consult for {t} today.",
    "The notes say {t} was ruled out.", "Ask the pharmacist about {t} before noon.",
)
TEST_TEMPLATES = (
    "The report confirms {t} in the second sample.", "Nobody expected {t} in a patient this young.",
    "Write {t} on the referral form.", "The family asked whether {t} is serious.",
    "We should check for {t} again tomorrow.", "Doctor Miller suspects {t}.",
)


def domain_terms(n: int, seed: int) -> list[str]:
    english = {w.strip().lower() for w in ENGLISH.read_text(errors="replace").splitlines()}
    words = [w.strip() for w in DICTIONARY.read_text(errors="replace").splitlines()]
    candidates = sorted({w for w in words if re.fullmatch(r"[a-z]{8,14}", w) and w not in english})
    return random.Random(seed).sample(candidates, n)


def sentences(terms: list[str], templates, per_term: int, seed: int) -> list[tuple[str, str]]:
    """(sentence, term) pairs: each term in `per_term` of the templates."""
    r = random.Random(seed)
    return [(template.format(t=term), term) for term in terms for template in r.sample(templates, per_term)]


def term_recall(hypotheses: list[str], terms: list[str]) -> float:
    return sum(term in re.findall(r"[a-z]+", h.lower()) for h, term in zip(hypotheses, terms)) / len(terms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--terms", type=int, default=40)
    parser.add_argument("--minutes", type=float, default=20.0, help="the adapter's training budget")
    parser.add_argument("--work", type=Path, default=Path("bench-domain"))
    parser.add_argument("--general-data", type=Path, help="a corpus folder with game_dev and real_dev")
    parser.add_argument("--general-limit", type=int, default=200, help="clips per general set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--projections", default="",
                        help="comma-separated LoRA projections the adapter trains (default: all); "
                             "its adapter and rows are named after them")
    parser.add_argument("--layers", type=int, default=0,
                        help="the adapter trains LoRA in the LLM's last this many layers only (default: all); "
                             "its adapter and rows are named after them")
    args = parser.parse_args()

    from voxprompt.adapters import resolve_adapter
    from voxprompt.export.default_model import ensure_default_model
    from voxprompt.llm import FILE_PARALLEL, LlmOptions
    from voxprompt.manifest import load_manifest
    from voxprompt.models.adapt import adapt
    from voxprompt.models.augment import AugmentOptions
    from voxprompt.models.dataset import _Synthetic, build_split, read_split
    from voxprompt.models.evaluate import transcribe_clips, wer, wer_interval, whisper_model, whisper_text
    from voxprompt.models.tts import HELD_OUT
    from voxprompt.transcriber import Transcriber

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    terms = domain_terms(args.terms, args.seed)
    train = sentences(terms, TRAIN_TEMPLATES, per_term=5, seed=args.seed)
    test = sentences(terms, TEST_TEMPLATES, per_term=3, seed=args.seed + 1)
    assert not {s for s, _ in train} & {s for s, _ in test}
    (work / "domain.txt").write_text("\n".join(s for s, _ in train) + "\n")
    hotwords = ", ".join(terms)

    model_dir = ensure_default_model()
    manifest = load_manifest(model_dir, verify=False)
    adapters = work / "adapters" / manifest.adapter_base_id  # an adapter and our rows belong to one base model
    projections = tuple(p for p in args.projections.split(",") if p)
    chosen = projections + ((f"last {args.layers} layers",) if args.layers else ())
    tag = f" [{'+'.join(chosen)}]" if chosen else ""
    folder = adapters / ("medical" + "-".join(("",) + projections + ((f"last{args.layers}",) if args.layers else ())))
    if not (folder / "adapter.json").exists():
        adapt(folder.name, work / "domain.txt", None, adapters, manifest.adapter_base_id, minutes=args.minutes,
              projections=projections, layers=args.layers)
    adapter = resolve_adapter(str(folder), manifest)
    info = json.loads((folder / "adapter.json").read_text())

    build_split(work, "test", [s for s, _ in test], _Synthetic(HELD_OUT, args.seed + 5000, AugmentOptions(p_telephone=0.0)))
    clips = list(read_split(work, "test"))
    clip_terms = [dict(test)[c.text] for c in clips]
    refs = [c.text for c in clips]

    rows_path = work / f"rows-{manifest.adapter_base_id}.json"
    rows: dict[str, dict] = json.loads(rows_path.read_text()) if rows_path.exists() else {}

    def score(set_refs: list[str], hyps: list[str], domain: bool = True) -> dict:
        return {"wer": wer(set_refs, hyps), "wer_95": wer_interval(set_refs, hyps),
                "recall": term_recall(hyps, clip_terms) if domain else None,
                "hypotheses": hyps if domain else None}  # kept, to read what the terms became

    def keep(name: str, row: dict) -> None:
        rows[name] = row
        rows_path.write_text(json.dumps(rows, indent=1))
        print(name, json.dumps({k: {m: v for m, v in r.items() if m != "hypotheses"} for k, r in row.items()}), flush=True)

    def ours(name: str, sets: dict, adapters=(), context=""):
        if name in rows:
            return
        t = Transcriber(model_dir, llm_options=LlmOptions(n_parallel=FILE_PARALLEL), adapters=adapters, context=context,
                        fold_adapters=True)  # as `voxprompt transcribe` applies them
        try:
            keep(name, {set_name: score(set_refs, transcribe_clips(t, set_clips), set_name == "domain")
                        for set_name, (set_refs, set_clips) in sets.items()})
        finally:
            t.close()

    sets = {"domain": (refs, clips)}
    if args.general_data:
        for split in ("game_dev", "real_dev"):
            general = list(read_split(args.general_data, split))
            general = general[:: max(1, len(general) // args.general_limit)][: args.general_limit]
            sets[split] = ([c.text for c in general], general)
    # a short context per clip, as training prompts carry: its term among 7 other terms of the domain
    r = random.Random(args.seed + 3)
    short_context = {}
    for term in terms:
        words = [term] + r.sample([t for t in terms if t != term], 7)
        r.shuffle(words)
        short_context[term] = ", ".join(words)

    def ours_per_term(name: str, adapters=()):
        if name in rows:
            return
        hyps = [""] * len(clips)
        for term in terms:
            t = Transcriber(model_dir, llm_options=LlmOptions(n_parallel=FILE_PARALLEL), adapters=adapters,
                            context=short_context[term], fold_adapters=True)
            try:
                mine = [i for i, ct in enumerate(clip_terms) if ct == term]
                for i, h in zip(mine, transcribe_clips(t, [clips[i] for i in mine])):
                    hyps[i] = h
            finally:
                t.close()
        keep(name, {"domain": score(refs, hyps)})

    ours("voxprompt", sets)
    ours("voxprompt + adapter" + tag, sets, adapters=[adapter])
    ours("voxprompt + context (all terms)", sets, context=hotwords)
    ours_per_term("voxprompt + context (8 terms)")
    ours("voxprompt + adapter + context (all terms)" + tag, {"domain": sets["domain"]}, adapters=[adapter], context=hotwords)
    ours_per_term("voxprompt + adapter + context (8 terms)" + tag, adapters=[adapter])

    model = None
    for name, options in (
            ("faster-whisper tiny.en", lambda term: {}),
            ("faster-whisper tiny.en + hotwords (all terms)", lambda term: {"hotwords": hotwords}),
            ("faster-whisper tiny.en + initial_prompt (all terms)", lambda term: {"initial_prompt": f"Glossary: {hotwords}."}),
            ("faster-whisper tiny.en + hotwords (8 terms)", lambda term: {"hotwords": short_context[term]}),
            ("faster-whisper tiny.en + initial_prompt (8 terms)",
             lambda term: {"initial_prompt": f"Glossary: {short_context[term]}."})):
        if name in rows:
            continue
        model = model or whisper_model("tiny.en")
        hyps = [whisper_text(model, c.audio, **options(term)) for c, term in zip(clips, clip_terms)]
        keep(name, {"domain": score(refs, hyps)})

    print(f"\n{len(clips)} test clips ({len(terms)} terms x 3 sentences, held-out voices); adapter: "
          f"{info['sentences']} sentences, {info['minutes']} min, {info['provenance'].get('steps')} steps\n")
    general_names = [s for s in sets if s != "domain"]
    print("| system | domain WER (95 %) | term recall | " + " | ".join(f"{s} WER (95 %)" for s in general_names) + " |")
    print("|---|---|---|" + "---|" * len(general_names))
    for name, row in rows.items():
        d = row["domain"]
        cells = [f"{d['wer']:.3f} ({d['wer_95'][0]:.3f}-{d['wer_95'][1]:.3f})", f"{d['recall']:.2f}"]
        for s in general_names:
            g = row.get(s)
            cells.append(f"{g['wer']:.3f} ({g['wer_95'][0]:.3f}-{g['wer_95'][1]:.3f})" if g else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
