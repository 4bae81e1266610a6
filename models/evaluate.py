"""Word error rate of a model over the corpus splits, with Whisper tiny.en on the same clips alongside.

    voxprompt eval --data data/ [--model DIR] [--splits heldout real_dev] [--limit 200] [--whisper]

Each clip goes through the whole runtime (VAD, encoder.onnx, llama.cpp), as a file would. Text is
normalised before scoring (case, punctuation); hypotheses are written to <data>/eval-<split>.jsonl.
"""
from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from voxprompt.audio import SAMPLE_RATE


def normalize(text: str) -> str:
    """For WER: lower case, punctuation dropped (apostrophes kept inside words), hyphens split, spaces folded."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return " ".join(w.strip("'") for w in text.split() if w.strip("'"))


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER (errors / reference words) over pairs whose reference is not empty."""
    import jiwer

    pairs = [(normalize(r), normalize(h)) for r, h in zip(references, hypotheses)]
    pairs = [(r, h) for r, h in pairs if r]
    if not pairs:
        return 0.0
    return jiwer.wer([r for r, _ in pairs], [h for _, h in pairs])


def transcribe_clips(transcriber, clips) -> list[str]:
    from voxprompt.vad import VadSegmenter

    out = []
    for clip in clips:
        vad = VadSegmenter(transcriber.vad_options)
        segments = vad.push(clip.audio) + vad.flush()
        out.append(" ".join(transcriber.transcribe_segment(s).text for s in segments).strip())
    return out


def whisper_clips(clips) -> list[str]:
    from faster_whisper import WhisperModel

    from voxprompt.models.assets import whisper_asset

    model = WhisperModel(str(whisper_asset("tiny.en").model_bin.parent), device="cpu", compute_type="int8")
    out = []
    for clip in clips:
        segments, _ = model.transcribe(clip.audio, beam_size=1, temperature=0.0, condition_on_previous_text=False)
        out.append(" ".join(s.text.strip() for s in segments))
    return out


def evaluate(data: Path, model_dir: Path, splits: list[str], limit: int, with_whisper: bool, log=print) -> list[dict]:
    from voxprompt.models.dataset import read_split
    from voxprompt.transcriber import Transcriber

    transcriber = Transcriber(model_dir)
    rows = []
    for split in splits:
        clips = list(read_split(data, split))[:limit]
        if not clips:
            raise SystemExit(f"voxprompt eval: no clips for split {split!r} in {data}")
        refs = [c.text for c in clips]
        t0 = time.perf_counter()
        hyps = transcribe_clips(transcriber, clips)
        seconds = sum(len(c.audio) for c in clips) / SAMPLE_RATE
        row = {"split": split, "clips": len(clips), "audio_s": round(seconds, 1),
               "wer": wer(refs, hyps), "rtf": (time.perf_counter() - t0) / seconds}
        if with_whisper:
            row["whisper_tiny_en_wer"] = wer(refs, whisper_clips(clips))
        with open(data / f"eval-{split}.jsonl", "w") as f:
            for c, h in zip(clips, hyps):
                f.write(json.dumps({"source": c.source, "reference": c.text, "hypothesis": h}) + "\n")
        log(json.dumps(row))
        rows.append(row)
    transcriber.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voxprompt eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a corpus folder (python -m voxprompt.models.dataset)")
    parser.add_argument("--model", type=Path, help="model directory (default: the bundled model)")
    parser.add_argument("--splits", nargs="+", default=["heldout", "real_dev"])
    parser.add_argument("--limit", type=int, default=1000, help="clips per split at most")
    parser.add_argument("--whisper", action="store_true", help="also score faster-whisper tiny.en (greedy)")
    args = parser.parse_args(argv)
    if args.model is None:
        from voxprompt.export.default_model import ensure_default_model

        args.model = ensure_default_model()
    rows = evaluate(args.data, args.model, args.splits, args.limit, args.whisper)
    print("\n| split | clips | audio s | voxprompt WER | Whisper tiny.en WER | voxprompt RTF |\n|---|---|---|---|---|---|")
    for r in rows:
        whisper = f"{r['whisper_tiny_en_wer']:.3f}" if "whisper_tiny_en_wer" in r else "-"
        print(f"| {r['split']} | {r['clips']} | {r['audio_s']} | {r['wer']:.3f} | {whisper} | {r['rtf']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
