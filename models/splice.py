"""New sentences in real voices: the game lines cut at their words' edges and joined across lines.

Session 22 found that the model hears the real lines it trained on (Joe: 9.7 % WER) far better than
new lines by the same voice (23.2 %): it learnt sentences by heart, not how those voices sound. There
are no more real lines in the packages, but there are more word sequences in the ones we have: each
training line's words are timed by the model's own CTC alignment (the path `--word-timestamps` runs),
and an utterance is made of word runs from several lines of one speaker, so its text is no line's text.

    python -m voxprompt.models.splice --data data-cut --count 4000

writes the split `train_spliced` beside `train_game` (shards, resumable like the corpus); only
training lines are read, never `game_dev`.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from voxprompt.audio import SAMPLE_RATE
from voxprompt.models.augment import AugmentOptions, augment
from voxprompt.models.dataset import SHARD_SIZE, Utterance, _write_shard, read_split, shards

FADE_S = 0.005  # a cut inside running speech is faded in and out, or it clicks
CUT_HOP_S = 0.01  # the loudness track a cut is placed on
CUT_SEARCH_S = 0.1  # how far from an aligned edge a cut may move to a quieter place
CUT_QUIET_S = 0.05  # a clean cut has this much quiet around it


@dataclass(frozen=True)
class TimedWord:
    text: str  # as the transcript writes it, punctuation attached ("Joe,")
    start: float  # seconds in the line's audio
    end: float


@dataclass(frozen=True)
class TimedLine:
    """One recorded line, its speaker and where each of its words is."""

    audio: np.ndarray  # 16 kHz float32
    speaker: str
    words: tuple[TimedWord, ...]

    @cached_property
    def _cut_track(self) -> tuple[np.ndarray, np.ndarray]:
        """The cuts (samples) and how far below the line's loudest the quiet around each one is (dB),
        computed once: every splice that draws this line asks for them."""
        hop = int(CUT_HOP_S * SAMPLE_RATE)
        n = len(self.audio) // hop
        db = 10 * np.log10(np.mean(self.audio[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-10)
        points = [0]
        for a, b in zip(self.words, self.words[1:]):
            low = max(min(a.end, b.start) - CUT_SEARCH_S, (a.start + a.end) / 2)
            high = min(max(a.end, b.start) + CUT_SEARCH_S, (b.start + b.end) / 2)
            lo, hi = int(low / CUT_HOP_S), max(int(high / CUT_HOP_S), int(low / CUT_HOP_S) + 1)
            window = db[lo:min(hi, n)]
            if len(window) == 0:
                points.append(int(round((a.end + b.start) / 2 * SAMPLE_RATE)))
                continue
            quiet = _longest_run(window <= window.min() + 1.0)
            points.append(int(round((lo + quiet + 0.5) * hop)))
        points.append(len(self.audio))
        cuts = np.clip(np.maximum.accumulate(np.array(points, np.int64)), 0, len(self.audio))
        half = int(CUT_QUIET_S / 2 / CUT_HOP_S)
        depth = np.array([db.max() - w.max() if len(w := db[max(f - half, 0): f + half + 1]) else 0.0
                          for f in cuts // hop]) if n else np.zeros(len(cuts))
        depth[[0, -1]] = np.inf  # the line's own edges: nothing is cut there
        return cuts, depth

    def cuts(self) -> np.ndarray:
        """Sample positions between words: [0, between words 0 and 1, ..., len(audio)]. The aligned edges
        are good to a CTC frame (80 ms) and a spike often comes late, so each cut goes to the quietest
        stretch near the edge (the middle of a pause; the closure or dip between touching words)."""
        return self._cut_track[0]

    def clean(self, min_depth_db: float = 25.0) -> np.ndarray:
        """Which cuts lie in a real pause: the CUT_QUIET_S around them at least `min_depth_db` below the
        line's loudest. Only there can a cut neither clip a word nor keep a piece of its neighbour (a
        dip between touching words is often inside one of them). The line's own edges always are."""
        return self._cut_track[1] >= min_depth_db

    def piece(self, first: int, stop: int) -> tuple[np.ndarray, list[str]]:
        """Words [first, stop) with their audio, faded where the cut is inside the line."""
        cuts = self.cuts()
        audio = self.audio[cuts[first]: cuts[stop]].copy()
        fade = min(int(FADE_S * SAMPLE_RATE), len(audio) // 2)
        if fade:
            ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
            if first > 0:
                audio[:fade] *= ramp
            if stop < len(self.words):
                audio[-fade:] *= ramp[::-1]
        return audio, [w.text for w in self.words[first:stop]]


def _longest_run(mask: np.ndarray) -> float:
    """The middle index of the longest run of True in `mask` (at least one is True)."""
    best, best_start, start = 0, 0, None
    for i, m in enumerate([*mask, False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            if i - start > best:
                best, best_start = i - start, start
            start = None
    return best_start + (best - 1) / 2


@dataclass(frozen=True)
class SpliceOptions:
    pieces: tuple[int, int] = (2, 4)  # word runs per utterance, from as many different lines
    max_run_words: int = 8
    max_words: int = 16
    gap_s: tuple[float, float] = (0.04, 0.3)  # silence between runs, as between phrases
    min_depth_db: float = 25.0  # runs are cut only in pauses this much below the line's loudest


def splice_text(runs: Sequence[Sequence[str]]) -> str:
    """The runs' words as one transcript: it starts with a capital, as every training transcript does."""
    text = " ".join(w for run in runs for w in run)
    return text[:1].upper() + text[1:]


def runs(line: TimedLine, max_words: int, min_depth_db: float) -> list[tuple[int, int]]:
    """The word runs [first, stop) a line offers: cut at clean cuts only, at most `max_words` long."""
    ends = np.flatnonzero(line.clean(min_depth_db))
    return [(int(i), int(j)) for i in ends for j in ends if i < j <= i + max_words]


def splice(lines: Sequence[TimedLine], rng: np.random.Generator, options: SpliceOptions = SpliceOptions()
           ) -> tuple[np.ndarray, str]:
    """Word runs from distinct lines (all of one speaker: the caller groups them), joined by short gaps."""
    n_pieces = int(rng.integers(options.pieces[0], options.pieces[1] + 1))
    audio: list[np.ndarray] = []
    texts: list[list[str]] = []
    budget = options.max_words
    for k in rng.permutation(len(lines)):
        if len(texts) == n_pieces or budget <= 0:
            break
        offered = runs(lines[int(k)], min(options.max_run_words, budget), options.min_depth_db)
        if not offered:
            continue
        first, stop = offered[int(rng.integers(len(offered)))]
        piece, words = lines[int(k)].piece(first, stop)
        if audio:
            audio.append(np.zeros(int(rng.uniform(*options.gap_s) * SAMPLE_RATE), np.float32))
        audio.append(piece)
        texts.append(words)
        budget -= stop - first
    if not audio:
        raise ValueError("no line offers a run that fits")
    return np.concatenate(audio), splice_text(texts)


def by_speaker(lines: Iterable[TimedLine]) -> dict[str, list[TimedLine]]:
    groups: dict[str, list[TimedLine]] = {}
    for line in lines:
        groups.setdefault(line.speaker, []).append(line)
    return {s: g for s, g in groups.items() if len(g) >= 2}  # one line alone has nothing to be joined with


def spliced_utterances(groups: dict[str, list[TimedLine]], count: int, seed: int,
                       options: SpliceOptions = SpliceOptions(), p_augment: float = 0.5) -> Iterator[Utterance]:
    """`count` utterances; a speaker is drawn in proportion to their lines; half are augmented as the
    game lines' second copies are (room, noise, level, speed)."""
    speakers = sorted(g for g in groups if any(runs(line, options.max_run_words, options.min_depth_db)
                                               for line in groups[g]))
    weights = np.array([len(groups[s]) for s in speakers], np.float64)
    made, i = 0, 0
    while made < count:
        rng = np.random.default_rng([seed, 17, i])
        i += 1
        speaker = speakers[int(rng.choice(len(speakers), p=weights / weights.sum()))]
        try:
            audio, text = splice(groups[speaker], rng, options)
        except ValueError:  # this speaker's lines are all long and unbroken: another utterance instead
            continue
        if rng.random() < p_augment:
            audio = augment(audio, rng, AugmentOptions(p_speed=0.8, p_telephone=0.0, pad_s=(0.05, 0.3)))
        else:  # quiet around it, as a VAD segment has (a run may start or end at a cut)
            audio = np.pad(audio, [int(rng.uniform(0.05, 0.3) * SAMPLE_RATE) for _ in range(2)])
        made += 1
        yield Utterance(audio.astype(np.float32), text, f"splice:{speaker}")


def timed_words(words) -> tuple[TimedWord, ...]:
    """The runtime's timed words (voxprompt.words.Word, times in the line's audio) as splicing uses them."""
    return tuple(TimedWord(w.word.strip(), w.start, w.end) for w in words)


def align(transcriber, audio: np.ndarray, text: str, min_probability: float = 0.02):
    """The line's words timed by the model's CTC head, forced to the line's own text; None when the head
    does not hear some word (probability below `min_probability`): its edges would be a guess."""
    from voxprompt.vad import SpeechSegment

    options = transcriber.vad_options
    segment = SpeechSegment(0, audio, pad_before=int(options.pre_roll_ms * SAMPLE_RATE / 1000),
                            pad_after=int(options.tail_ms * SAMPLE_RATE / 1000))
    request = transcriber.request(None, segment)
    tokens = transcriber.llm.tokenize(text)
    words = transcriber.words(segment, tokens, request)
    if not words or min(w.probability for w in words) < min_probability or any(w.end <= w.start for w in words):
        return None
    return timed_words(words)


def aligned_lines(data: Path, cache: Path, open_transcriber=None, log=print) -> list[TimedLine]:
    """`train_game`'s lines as recorded (its first copies), timed; the times are kept in `cache` (JSON),
    and the model (`open_transcriber()`) is loaded only when some line is not timed there yet."""
    times = json.loads(cache.read_text()) if cache.exists() else {}
    lines, seen, dropped, transcriber = [], set(), 0, None
    try:
        for u in read_split(data, "train_game"):
            key = f"{u.source}|{u.text}"
            if key in seen:  # the augmented second copy of a line
                continue
            seen.add(key)
            if key not in times:
                transcriber = transcriber or open_transcriber()
                words = align(transcriber, u.audio, u.text)
                times[key] = None if words is None else [[w.text, w.start, w.end] for w in words]
            if times[key] is None:
                dropped += 1
                continue
            words = tuple(TimedWord(t, s, e) for t, s, e in times[key])
            lines.append(TimedLine(u.audio, u.source.removeprefix("game:"), words))
    finally:
        if transcriber is not None:
            transcriber.close()
            cache.write_text(json.dumps(times))
    log(f"splice: {len(lines)} lines timed, {dropped} left out (a word the CTC head does not hear)")
    return lines


def default_transcriber(model: str | None = None):
    from voxprompt.export.default_model import ensure_default_model
    from voxprompt.transcriber import Transcriber

    return Transcriber.open(model or ensure_default_model(), device="cpu")


def build(data: Path, groups: dict[str, list[TimedLine]], count: int, seed: int = 0, log=print) -> None:
    """`count` spliced utterances as `train_spliced` shards; shards already there are kept."""
    paths = [data / f"train_spliced-{k // SHARD_SIZE:04d}.npz" for k in range(0, count, SHARD_SIZE)]
    if all(path.exists() for path in paths):
        log(f"splice: {data}/train_spliced-*.npz already made")
        return
    utterances = spliced_utterances(groups, count, seed)
    for k in range(0, count, SHARD_SIZE):
        path = paths[k // SHARD_SIZE]
        chunk = [next(utterances) for _ in range(min(SHARD_SIZE, count - k))]  # drawn in order: same seed, same split
        if not path.exists():
            _write_shard(path, chunk)
    log(f"splice: {count} utterances from {len(groups)} speakers in {data}/train_spliced-*.npz")


def whisper_check(lines: list[TimedLine], groups: dict[str, list[TimedLine]], n: int, log=print) -> None:
    """Whisper tiny.en on n random source lines and on n spliced utterances without augmentation: a
    splice that cut into words (a clipped onset, half a neighbour) shows as more errors on the second."""
    from voxprompt.models.evaluate import wer, whisper_model, whisper_text

    model = whisper_model("tiny.en")
    picked = np.random.default_rng(0).permutation(len(lines))[:n]
    sources = [(lines[int(k)].audio, " ".join(w.text for w in lines[int(k)].words)) for k in picked]
    spliced = [(u.audio, u.text) for u in spliced_utterances(groups, n, seed=99, p_augment=0.0)]
    for name, clips in (("source lines", sources), ("spliced utterances, not augmented", spliced)):
        hypotheses = [whisper_text(model, audio, greedy=False) for audio, _ in clips]
        log(f"Whisper tiny.en on {len(clips)} {name}: WER {100 * wer([t for _, t in clips], hypotheses):.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a corpus built with --games")
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="the model whose CTC head times the words (default: the bundled one)")
    parser.add_argument("--check", type=int, default=0, metavar="N",
                        help="then score Whisper tiny.en on N random source lines and N spliced utterances")
    args = parser.parse_args()
    if not shards(args.data, "train_game"):
        raise SystemExit(f"{args.data}: no train_game shards; build the corpus with "
                         "`python -m voxprompt.models.dataset --games` first")
    lines = aligned_lines(args.data, args.data / "splice-times.json", lambda: default_transcriber(args.model))
    groups = by_speaker(lines)
    build(args.data, groups, args.count, args.seed)
    if args.check:
        whisper_check(lines, groups, args.check)


if __name__ == "__main__":
    main()
