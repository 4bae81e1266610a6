"""Word error rate of a model over the corpus splits, with Whisper tiny.en on the same clips alongside.

    python -m voxprompt.models.evaluate --data data/ [--model DIR] [--splits heldout real_dev] [--limit 200] [--beam 4] [--whisper]

Each clip goes through the whole runtime (VAD, encoder.onnx, llama.cpp), as a file would (or, with
`--dictation`, as live dictation would: partial decodes while it plays, then a final). Text goes
through Whisper's English normaliser before scoring; a clip whose reference normalises to nothing (a
"<beep>" annotation) is not scored. Hypotheses are written to <data>/eval-<split>.jsonl.
"""
from __future__ import annotations

import argparse
import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

from voxprompt.audio import SAMPLE_RATE
from voxprompt.llm import FILE_PARALLEL, LlmOptions


@lru_cache(maxsize=1)
def _english_normalizer():
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    """For WER: Whisper's English text normaliser (the field's standard, so figures compare with
    published ones): case and punctuation dropped, numbers and spellings standardised ("zero" -> "0",
    "you've" -> "you have"), bracketed non-speech annotations such as "<beep>" removed."""
    return _english_normalizer()(text)


def scored_pairs(references: list[str], hypotheses: list[str]) -> list[tuple[str, str]]:
    """Normalised (reference, hypothesis) pairs, less those whose reference has no words ("<beep>")."""
    pairs = [(normalize(r), normalize(h)) for r, h in zip(references, hypotheses)]
    return [(r, h) for r, h in pairs if r]


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER (errors / reference words) over pairs whose reference is not empty."""
    import jiwer

    pairs = scored_pairs(references, hypotheses)
    if not pairs:
        return 0.0
    return jiwer.wer([r for r, _ in pairs], [h for _, h in pairs])


def clip_errors(references: list[str], hypotheses: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Word errors and reference words per clip, over the pairs whose reference is not empty."""
    import jiwer

    pairs = scored_pairs(references, hypotheses)
    errors, words = np.zeros(len(pairs)), np.zeros(len(pairs))
    for i, (r, h) in enumerate(pairs):
        words[i] = len(r.split())
        if r != h:
            out = jiwer.process_words(r, h)
            errors[i] = out.substitutions + out.deletions + out.insertions
    return errors, words


def _bootstrap(errors: np.ndarray, words: np.ndarray, level: float, resamples: int, seed: int) -> tuple[float, float]:
    """Percentile interval of sum(errors) / sum(words) over resampled clips; `errors` per clip may be one
    system's, or two systems' difference (a paired comparison)."""
    picks = np.random.default_rng(seed).integers(0, len(words), (resamples, len(words)))
    rates = errors[picks].sum(axis=1) / words[picks].sum(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(rates, tail)), float(np.percentile(rates, 100 - tail))


def wer_interval(references: list[str], hypotheses: list[str], level: float = 0.95, resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """A bootstrap interval for the corpus WER, resampling clips: 138 clips of a few words each leave
    a point or two of chance either way, and two models closer than that are not told apart."""
    errors, words = clip_errors(references, hypotheses)
    return _bootstrap(errors, words, level, resamples, seed) if len(words) else (0.0, 0.0)


def wer_difference_interval(references: list[str], hypotheses: list[str], baseline: list[str], level: float = 0.95,
                            resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """WER(hypotheses) - WER(baseline) on the same clips, with a paired bootstrap interval: each resample
    draws clips for both systems at once, so what the clips share (hard voices, long lines) cancels and
    two models whose separate intervals overlap may still be told apart."""
    errors, words = clip_errors(references, hypotheses)
    base_errors, _ = clip_errors(references, baseline)
    if not len(words):
        return 0.0, 0.0, 0.0
    delta = errors - base_errors
    return (float(delta.sum() / words.sum()), *_bootstrap(delta, words, level, resamples, seed))


def voice_of(source: str) -> str:
    """The group a clip is reported in: a TTS engine and accent ("espeak:en-029"), or "real"."""
    return "real" if source.startswith("real:") else source.split("+")[0]


def length_of(reference: str) -> str:
    """The group a clip is reported in by its length: lone words, phrases, sentences (normalised words)."""
    n = len(normalize(reference).split())
    return "not scored" if n == 0 else "1 word" if n == 1 else "2-4 words" if n <= 4 else "5+ words"


def wer_by_group(groups_of: list[str], references: list[str], hypotheses: list[str]) -> dict[str, tuple[int, float]]:
    """(clips, WER) per group, each clip in the group named for it."""
    groups: dict[str, list[int]] = {}
    for i, group in enumerate(groups_of):
        groups.setdefault(group, []).append(i)
    return {g: (len(ix), wer([references[i] for i in ix], [hypotheses[i] for i in ix]))
            for g, ix in sorted(groups.items())}


def wer_by_voice(sources: list[str], references: list[str], hypotheses: list[str]) -> dict[str, tuple[int, float]]:
    """(clips, WER) per voice group: held-out voices differ widely, and one corpus figure hides which."""
    return wer_by_group([voice_of(s) for s in sources], references, hypotheses)


def wer_by_length(references: list[str], hypotheses: list[str]) -> dict[str, tuple[int, float]]:
    """(clips, WER) per reference length: a lone word has no context for the LLM to lean on."""
    groups = wer_by_group([length_of(r) for r in references], references, hypotheses)
    groups.pop("not scored", None)  # "<beep>": nothing to count
    return groups


def transcribe_clips(transcriber, clips) -> list[str]:
    """Each clip's transcript, through the very path `voxprompt transcribe` runs for files (VAD, framing,
    segments of several clips decoded together, beam search)."""
    from voxprompt.files import AudioClip, SegmentDone, transcribe_files

    texts: dict[str, list[str]] = {}
    sources = [AudioClip(f"clip-{i}", clip.audio) for i, clip in enumerate(clips)]
    for event in transcribe_files(transcriber, sources):
        if isinstance(event, SegmentDone) and event.segment.text:
            texts.setdefault(event.path.name, []).append(event.segment.text)
    return [" ".join(texts.get(source.name, [])) for source in sources]


class ReplayedSpeech:
    """A recording played to the dictation engine as a microphone would deliver it, in 20 ms blocks, on
    a virtual clock: the audio arrives in real time, and the time the engine spends decoding passes on
    the clock, so the backlog (and which partials are skipped or cut short for it) is the live one,
    without waiting. `read` returns None only at the end (a block comes every 20 ms)."""

    BLOCK = SAMPLE_RATE // 50

    def __init__(self, audio: np.ndarray):
        self.audio, self.at, self.clock = audio, 0, 0.0
        self._returned: float | None = None

    def read(self, timeout: float = 0.1) -> np.ndarray | None:
        """The next block once it has arrived, waiting (on the clock) up to `timeout`; None at the end."""
        now = time.perf_counter()
        if self._returned is not None:
            self.clock += now - self._returned  # the engine was busy since the last call
        self._returned = now
        if self.at >= len(self.audio):
            return None
        arrival = (self.at + self.BLOCK) / SAMPLE_RATE
        if arrival > self.clock + timeout:
            self.clock += timeout
            return None
        self.clock = max(self.clock, arrival)  # idle until it arrives
        self.at += self.BLOCK
        return self.audio[self.at - self.BLOCK: self.at]

    def backlog_seconds(self) -> float:
        return max(0.0, self.clock - self.at / SAMPLE_RATE)

    def now(self) -> float:
        """The virtual clock, the engine's time since its last read included: the engine's clock."""
        return self.clock + (time.perf_counter() - self._returned if self._returned is not None else 0.0)


def dictate_clips(transcriber, clips, options=None) -> tuple[list[str], list[list[float]]]:
    """Each clip's transcript as live dictation gives it (partials, agreed words, finals), the clip
    framed by the quiet a speaker leaves around a sentence (0.5 s before, 1 s after); and every final's
    latency (end of speech -> text, ms, on the replay's clock: what a live speaker on this machine waits,
    the audio stack's own delay aside), clip by clip."""
    from voxprompt.dictation import DictationEngine, DictationOptions

    texts, latencies = [], []
    for clip in clips:
        audio = np.concatenate([np.zeros(SAMPLE_RATE // 2, np.float32), clip.audio, np.zeros(SAMPLE_RATE, np.float32)])
        source = ReplayedSpeech(audio)
        engine = DictationEngine(transcriber, source, lambda event: None, options or DictationOptions(),
                                 clock=source.now)
        finals = engine.replay()
        texts.append(" ".join(f.text for f in finals if f.text))
        latencies.append([f.latency_ms for f in finals])
    return texts, latencies


def whisper_model(name: str = "tiny.en"):
    """faster-whisper on an installed Whisper checkpoint (int8, CPU). CTranslate2 reads config, tokenizer
    and vocabulary beside model.bin; Whisper base's model.bin is joined in the cache, so they are linked there."""
    from faster_whisper import WhisperModel

    from voxprompt.models.assets import whisper_asset

    asset = whisper_asset(name)
    folder = asset.model_bin.parent
    for part in asset.config_json.parent.iterdir():
        if not part.name.startswith("model.bin") and not (folder / part.name).exists():
            (folder / part.name).symlink_to(part)
    return WhisperModel(str(folder), device="cpu", compute_type="int8")


def cached_map(items: list, key, compute, cache: Path | None, save_every: int = 50) -> list:
    """compute(items not yet done) -> their results, in order; results are kept in `cache` (JSON, by
    key(item)) and saved as they come, so a long pass that is interrupted keeps what it did."""
    done = json.loads(cache.read_text()) if cache is not None and cache.exists() else {}
    todo = [item for item in items if key(item) not in done]
    for k, (item, result) in enumerate(zip(todo, compute(todo)), start=1):
        done[key(item)] = result
        if cache is not None and (k % save_every == 0 or k == len(todo)):
            partial = cache.with_suffix(".partial")
            partial.write_text(json.dumps(done))
            partial.replace(cache)
    return [done[key(item)] for item in items]


def whisper_text(model, audio: np.ndarray, greedy: bool = True, **options) -> str:
    """A faster-whisper model's transcript of one clip (English, no conditioning on earlier text).
    `greedy`: beam 1 at temperature 0, as the corpus's agreement checks decode (kept, so the corpus does
    not move); otherwise faster-whisper's own defaults (beam 5, a hotter retry of a repetition loop), as
    its users run it: the baseline voxprompt's accuracy is scored against."""
    if model.model.is_multilingual:
        options.setdefault("language", "en")
    if greedy:
        options = {"beam_size": 1, "temperature": 0.0, **options}
    segments, _ = model.transcribe(audio, condition_on_previous_text=False, **options)
    return " ".join(s.text.strip() for s in segments)


def whisper_clips(clips, cache: Path | None = None) -> list[str]:
    """faster-whisper tiny.en's transcript of each clip, at its defaults. With `cache` (a JSON file), transcripts
    of clips already done (same audio length and reference) are reused: a 30 s window per clip makes
    Whisper slow on many short clips, and its answer does not change between evaluations."""
    def transcribe(todo) -> Iterator[str]:
        model = whisper_model("tiny.en")
        for clip in todo:
            yield whisper_text(model, clip.audio, greedy=False)

    return cached_map(clips, lambda clip: f"{len(clip.audio)}:{clip.text}", transcribe, cache)


def evaluate(data: Path, model_dir: Path, splits: list[str], limit: int, with_whisper: bool, skip: int = 0,
             beam_size: int = LlmOptions.beam_size, log=print, dictation=None, baseline: Path | None = None) -> list[dict]:
    """`dictation`: DictationOptions to replay the clips through live dictation with (None: as files);
    `baseline`: another model run on the same clips, its WER difference given with a paired interval."""
    from voxprompt.models.dataset import read_split
    from voxprompt.transcriber import Transcriber

    parallel = 1 if dictation is not None else FILE_PARALLEL  # as `voxprompt dictate` / `transcribe` open it
    options = LlmOptions(beam_size=beam_size, n_parallel=parallel)
    transcriber = Transcriber(model_dir, llm_options=options)
    base = Transcriber(baseline, llm_options=options) if baseline is not None else None

    def run(t, clips) -> tuple[list[str], list[list[float]] | None]:
        return (transcribe_clips(t, clips), None) if dictation is None else dictate_clips(t, clips, dictation)

    rows = []
    for split in splits:
        clips = list(read_split(data, split))[skip:skip + limit]
        if not clips:
            raise SystemExit(f"voxprompt.models.evaluate: no clips for split {split!r} in {data}")
        refs = [c.text for c in clips]
        t0 = time.perf_counter()
        hyps, latencies = run(transcriber, clips)
        seconds = sum(len(c.audio) for c in clips) / SAMPLE_RATE
        row = {"split": split, "clips": len(clips), "audio_s": round(seconds, 1),
               "wer": wer(refs, hyps), "wer_95": [round(w, 4) for w in wer_interval(refs, hyps)],
               "rtf": (time.perf_counter() - t0) / seconds}
        if latencies and any(latencies):
            every = [ms for clip in latencies for ms in clip]
            row["final_latency_ms"] = [round(float(np.percentile(every, q))) for q in (50, 95)]
        if base is not None:
            base_hyps = run(base, clips)[0]
            row["baseline_wer"] = wer(refs, base_hyps)
            row["difference_95"] = [round(d, 4) for d in wer_difference_interval(refs, hyps, base_hyps)]
        whisper = whisper_clips(clips, data / f"whisper-tiny.en-defaults-{split}.json") if with_whisper else None
        if whisper is not None:
            row["whisper_tiny_en_wer"] = wer(refs, whisper)
            row["whisper_tiny_en_95"] = [round(w, 4) for w in wer_interval(refs, whisper)]
        sources = [c.source for c in clips]
        for key, grouped in (("by_voice", lambda h: wer_by_voice(sources, refs, h)),
                             ("by_length", lambda h: wer_by_length(refs, h))):
            ours, theirs = grouped(hyps), grouped(whisper) if whisper is not None else {}
            row[key] = {g: [n, round(w, 4), round(theirs[g][1], 4) if g in theirs else None]
                        for g, (n, w) in ours.items()}
        with open(data / f"eval-{split}{'-dictation' if dictation is not None else ''}.jsonl", "w") as f:
            for i, (c, h) in enumerate(zip(clips, hyps)):
                line = {"source": c.source, "reference": c.text, "hypothesis": h, "whisper": whisper[i] if whisper else None}
                if latencies is not None:  # where a slow final comes from: the clip it belongs to
                    line["final_latency_ms"] = [round(ms) for ms in latencies[i]]
                f.write(json.dumps(line) + "\n")
        log(json.dumps(row))
        rows.append(row)
    for t in (transcriber, base):
        if t is not None:
            t.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voxprompt.models.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a corpus folder (python -m voxprompt.models.dataset)")
    parser.add_argument("--model", type=Path, help="model directory (default: the bundled model)")
    parser.add_argument("--splits", nargs="+", default=["heldout", "real_dev"])
    parser.add_argument("--limit", type=int, default=1000, help="clips per split at most")
    parser.add_argument("--skip", type=int, default=0, help="start after this many clips (a tuning slice apart from the scored one)")
    parser.add_argument("--beam", type=int, default=LlmOptions.beam_size, help="hypotheses kept per segment (1: greedy)")
    parser.add_argument("--whisper", action="store_true",
                        help="also score faster-whisper tiny.en (at its defaults: beam 5, temperature fallback)")
    parser.add_argument("--baseline", type=Path,
                        help="another model directory run on the same clips: the WER difference, paired 95 %% interval")
    parser.add_argument("--dictation", choices=["agreed", "whole"],
                        help="replay each clip through live dictation instead (partials, then a final): 'agreed' "
                             "gives the final the words partials agreed on (the default), 'whole' decodes it all")
    args = parser.parse_args(argv)
    if args.model is None:
        from voxprompt.export.default_model import ensure_default_model

        args.model = ensure_default_model()
    dictation = None
    if args.dictation:
        from voxprompt.dictation import DictationOptions

        dictation = DictationOptions() if args.dictation == "agreed" else DictationOptions(keep_agreed=False)
    rows = evaluate(args.data, args.model, args.splits, args.limit, args.whisper, args.skip, args.beam,
                    dictation=dictation, baseline=args.baseline)
    print("\n| split | clips | audio s | voxprompt WER (95 %) | Whisper tiny.en WER (95 %) | voxprompt RTF |"
          "\n|---|---|---|---|---|---|")
    for r in rows:
        whisper = (f"{r['whisper_tiny_en_wer']:.3f} ({r['whisper_tiny_en_95'][0]:.3f}-{r['whisper_tiny_en_95'][1]:.3f})"
                   if "whisper_tiny_en_wer" in r else "-")
        low, high = r["wer_95"]
        print(f"| {r['split']} | {r['clips']} | {r['audio_s']} | {r['wer']:.3f} ({low:.3f}-{high:.3f}) | {whisper} "
              f"| {r['rtf']:.3f} |")
    for r in rows:
        if "difference_95" in r:
            diff, low, high = (100 * d for d in r["difference_95"])
            print(f"{r['split']}: {r['wer']:.3f} against the baseline's {r['baseline_wer']:.3f}: {diff:+.1f} points "
                  f"(95 %: {low:+.1f} to {high:+.1f}, the same clips resampled together)")
    for r in rows:
        if "final_latency_ms" in r:
            print(f"{r['split']}: dictation's end of speech -> final, median {r['final_latency_ms'][0]} ms, "
                  f"p95 {r['final_latency_ms'][1]} ms (on the replay's clock)")
    for key, title in (("by_voice", "voice"), ("by_length", "reference length")):
        print(f"\n| split | {title} | clips | voxprompt WER | Whisper tiny.en WER |\n|---|---|---|---|---|")
        for r in rows:
            for group, (n, ours, theirs) in r[key].items():
                print(f"| {r['split']} | {group} | {n} | {ours:.3f} | {'-' if theirs is None else f'{theirs:.3f}'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
