#!/usr/bin/env python3
"""Word timestamps against known boundaries: recordings assembled from separately recorded phrases.

    python scripts/bench_words.py [--recordings 6] [--phrases 8] [--sets game asterisk tts] [--snr 20]
                                  [--model DIR] [--no-whisper]

Each recording joins `--phrases` short phrases (1-5 words), each trimmed to its speech (10 ms frames
within 30 dB of its loudest), with random gaps of 0.25-1.2 s of silence between them: where every phrase
starts and ends is known to the sample. Sets: `game`, the held-out game characters (real voices no
training run has heard); `asterisk`, the real prompts never trained on (`real_dev`); `tts`, held-out
synthetic voices; `calibration`, training voices (what `words.py`'s word-end rule was chosen on).
Recordings go through `voxprompt transcribe`'s path (VAD, framing, batched beam search) with word
timestamps; faster-whisper tiny.en's word timestamps on the same audio are the yardstick.

With `--snr`, each set is measured again with pink noise under it at that signal-to-noise ratio (the
boundaries stay those of the clean phrases): word edges are fitted to the sound, so this is where they
would fail.

Only words both recognised and matched to the reference by text count (a lone match of a word under
4 letters is not trusted: "the" can pair with another phrase's "the"); a phrase's first word gives a
start boundary, its last word an end boundary. Prints a Markdown table: median, p90, share within 100 ms.
"""
from __future__ import annotations

import argparse
import difflib
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxprompt.audio import SAMPLE_RATE, load_audio


@dataclass(frozen=True)
class RefWord:
    text: str  # normalised
    start: float | None  # known only at a phrase's first word
    end: float | None  # and at its last


@dataclass(frozen=True)
class Recording:
    name: str
    audio: np.ndarray
    words: list[RefWord]


def normalise(word: str) -> str:
    return re.sub(r"[^a-z0-9']", "", word.lower())


def trim(audio: np.ndarray, floor_db: float = 30.0) -> np.ndarray:
    """The speech inside a clip: from the first to the last 10 ms frame within `floor_db` of the loudest."""
    hop = SAMPLE_RATE // 100
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
    db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(db > db.max() - floor_db)
    out = audio[loud[0] * hop: (loud[-1] + 1) * hop].copy()
    fade = np.linspace(0, 1, SAMPLE_RATE // 200, dtype=np.float32)  # 5 ms, so a cut is no click
    out[: len(fade)] *= fade
    out[len(out) - len(fade):] *= fade[::-1]
    return out


def assemble(name: str, phrases: list[tuple[np.ndarray, str]], rng: random.Random) -> Recording:
    parts, words, t = [], [], 0.0
    for audio, text in phrases:
        gap = np.zeros(int(rng.uniform(0.25, 1.2) * SAMPLE_RATE), np.float32)
        speech = trim(audio)
        start = t + len(gap) / SAMPLE_RATE
        end = start + len(speech) / SAMPLE_RATE
        tokens = [normalise(w) for w in text.split() if normalise(w)]
        for i, w in enumerate(tokens):
            words.append(RefWord(w, start if i == 0 else None, end if i == len(tokens) - 1 else None))
        parts += [gap, speech]
        t = end
    parts.append(np.zeros(SAMPLE_RATE // 2, np.float32))
    return Recording(name, np.concatenate(parts), words)


def with_noise(recording: Recording, snr_db: float, seed: int) -> Recording:
    """Pink noise under the whole recording, `snr_db` below the speech's mean power."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(len(recording.audio)))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    noise = np.fft.irfft(spectrum, len(recording.audio))
    speech_power = np.mean(recording.audio[np.abs(recording.audio) > 1e-4] ** 2)
    noise *= np.sqrt(speech_power / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return Recording(f"{recording.name}-snr{snr_db:g}", (recording.audio + noise).astype(np.float32),
                     recording.words)


def short(text: str, max_words: int = 5) -> bool:
    return 1 <= len(text.split()) <= max_words


def game_phrases(rng: random.Random, n: int) -> list[tuple[np.ndarray, str]]:
    from voxprompt.models.games import Dictionary, GameArchive, game_root, game_splits

    archive = GameArchive(game_root())
    dev = [line for line in game_splits(archive.lines(), Dictionary.load()).dev if short(line.text)]
    return [(archive.audio(line), line.text) for line in rng.sample(dev, n)]


def asterisk_phrases(rng: random.Random, n: int) -> list[tuple[np.ndarray, str]]:
    from voxprompt.models.dataset import is_real_dev, real_prompts

    dev = [(path, text) for path, text in real_prompts() if is_real_dev(path) and short(text)]
    return [(load_audio(path), text) for path, text in rng.sample(dev, n)]


def tts_phrases(rng: random.Random, n: int, voices) -> list[tuple[np.ndarray, str]]:
    from voxprompt.models.corpus import fortune_sentences
    from voxprompt.models.tts import synthesize

    sentences = fortune_sentences()
    phrases = []
    for _ in range(n):
        words = rng.choice(sentences).split()
        k = rng.randint(1, min(4, len(words)))
        at = rng.randrange(len(words) - k + 1)
        text = " ".join(words[at: at + k]).strip(",;:")
        phrases.append((synthesize(rng.choice(voices), text), text))
    return phrases


def phrases_for(name: str, rng: random.Random, n: int):
    from voxprompt.models.tts import HELD_OUT, TRAIN_VOICES

    if name == "game":
        return game_phrases(rng, n)
    if name == "asterisk":
        return asterisk_phrases(rng, n)
    return tts_phrases(rng, n, HELD_OUT if name == "tts" else TRAIN_VOICES)


def boundary_errors(reference: list[RefWord], words: list[tuple[str, float, float]]) -> tuple[list[float], list[float]]:
    """|start error| at phrase starts and |end error| at phrase ends, for words matched by text."""
    hyp = [normalise(w) for w, _, _ in words]
    matcher = difflib.SequenceMatcher(a=[r.text for r in reference], b=hyp, autojunk=False)
    starts, ends = [], []
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            ref, (_, start, end) = reference[block.a + k], words[block.b + k]
            if block.size == 1 and len(ref.text) < 4:
                continue  # a lone short word ("the", "a") can match its namesake in another phrase
            if ref.start is not None:
                starts.append(abs(start - ref.start))
            if ref.end is not None:
                ends.append(abs(end - ref.end))
    return starts, ends


def voxprompt_words(model: Path | None, recordings: list[Recording], beam: int) -> list[list[tuple[str, float, float]]]:
    from voxprompt.export.default_model import ensure_default_model
    from voxprompt.files import AudioClip, SegmentDone, transcribe_files
    from voxprompt.llm import FILE_PARALLEL, LlmOptions
    from voxprompt.transcriber import Transcriber

    transcriber = Transcriber(model or ensure_default_model(), llm_options=LlmOptions(n_parallel=FILE_PARALLEL,
                                                                                      beam_size=beam))
    found: dict[str, list] = {r.name: [] for r in recordings}
    clips = [AudioClip(r.name, r.audio) for r in recordings]
    for event in transcribe_files(transcriber, clips, word_timestamps=True):
        if isinstance(event, SegmentDone):
            found[event.path.name] += [(w.word, w.start, w.end) for w in event.segment.words]
    transcriber.close()
    return [found[r.name] for r in recordings]


def whisper_words(recordings: list[Recording]) -> list[list[tuple[str, float, float]]]:
    from voxprompt.models.evaluate import whisper_model

    model = whisper_model("tiny.en")
    out = []
    for r in recordings:
        segments, _ = model.transcribe(r.audio, beam_size=1, temperature=0.0, condition_on_previous_text=False,
                                       word_timestamps=True)
        out.append([(w.word, w.start, w.end) for s in segments for w in s.words])
    return out


def row(name: str, system: str, recordings: list[Recording], words: list[list[tuple[str, float, float]]]) -> str:
    starts, ends = [], []
    for r, w in zip(recordings, words):
        s, e = boundary_errors(r.words, w)
        starts += s
        ends += e
    both = np.array(starts + ends) * 1000
    cell = lambda x: f"{np.median(x) * 1000:.0f} / {np.percentile(x, 90) * 1000:.0f}" if x else "-"
    within = f"{np.mean(both <= 100) * 100:.0f} %" if len(both) else "-"
    return f"| {name} | {system} | {len(starts)} / {len(ends)} | {cell(starts)} | {cell(ends)} | {within} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=int, default=6)
    parser.add_argument("--phrases", type=int, default=8, help="phrases per recording")
    parser.add_argument("--sets", nargs="+", default=["game", "asterisk", "tts"],
                        choices=["game", "asterisk", "tts", "calibration"])
    parser.add_argument("--model", type=Path, help="model directory (default: the bundled model)")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--snr", type=float, nargs="*", default=[20.0], help="noisy variants (dB; none: clean only)")
    parser.add_argument("--no-whisper", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print("| set | system | boundaries (starts / ends) | start error, ms (median / p90) | end error, ms (median / p90) "
          "| within 100 ms |")
    print("|---|---|---|---|---|---|")
    for name in args.sets:
        rng = random.Random(args.seed)
        phrases = phrases_for(name, rng, args.recordings * args.phrases)
        clean = [assemble(f"{name}-{i}", phrases[i * args.phrases: (i + 1) * args.phrases], rng)
                 for i in range(args.recordings)]
        for snr in [None, *args.snr]:
            recordings = clean if snr is None else [with_noise(r, snr, i) for i, r in enumerate(clean)]
            label = name if snr is None else f"{name}, noise at {snr:g} dB SNR"
            print(row(label, "voxprompt", recordings, voxprompt_words(args.model, recordings, args.beam)), flush=True)
            if not args.no_whisper:
                print(row(label, "faster-whisper tiny.en", recordings, whisper_words(recordings)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
