"""Word timestamps: the final transcript's tokens aligned to the CTC head's frames (no second model).

The CTC head hears each token as a spike on one or two of its frames (80 ms each in the default model),
so a forced alignment of the decoded tokens (Viterbi over the blank-interleaved token sequence) says
when each token was heard: a word spans its tokens' spikes. A spike says little about where a word's
sound begins and ends (it marks the token, often late, and one spike covers a long word), so the
edges are then moved to the sound itself: out while the audio around the spikes stays loud, in while
it is quiet, never past a neighbour word. Times map back to the original audio through the segment's
framing, like segment times.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voxprompt.audio import SAMPLE_RATE

NEG_INF = -np.inf


@dataclass(frozen=True)
class Word:
    word: str  # as in the transcript, with its leading space (" Joe,")
    start: float  # seconds in the original audio
    end: float
    probability: float  # the CTC head's confidence in the word's tokens (geometric mean)

    def to_json(self) -> dict:  # as transcripts and dictation's JSON lines carry it
        return {"word": self.word, "start": round(self.start, 3), "end": round(self.end, 3),
                "probability": round(self.probability, 3)}


@dataclass(frozen=True)
class TokenSpan:
    """Where the alignment put one token: frames [first, last] (-1, -1: not aligned) and its mean
    log-posterior there."""

    first: int
    last: int
    log_prob: float


def forced_alignment(blank: np.ndarray, emissions: np.ndarray, classes: np.ndarray) -> list[TokenSpan]:
    """The most likely CTC path that emits exactly `classes` in order.

    blank [T]: log P(blank) per frame; emissions [L, T]: log P(class l) per frame; classes [L] (equal
    neighbours need a blank between them). Returns one span per class; all (-1, -1) when the frames
    cannot hold the sequence (fewer frames than tokens and repeats)."""
    n_tokens, n_frames = emissions.shape
    if n_tokens == 0:
        return []
    repeats = int(np.sum(classes[1:] == classes[:-1]))
    if n_frames < n_tokens + repeats:
        return [TokenSpan(-1, -1, 0.0)] * n_tokens
    n_states = 2 * n_tokens + 1  # blank, token 0, blank, token 1, ..., blank
    skip_ok = np.zeros(n_states, bool)  # token state s may come from s - 2 (the previous token)
    skip_ok[3::2] = classes[1:] != classes[:-1]

    def frame_scores(t: int) -> np.ndarray:
        scores = np.full(n_states, blank[t])
        scores[1::2] = emissions[:, t]
        return scores

    score = np.full(n_states, NEG_INF)
    score[:2] = frame_scores(0)[:2]
    back = np.zeros((n_frames, n_states), np.int8)  # 0: stayed, 1: from s - 1, 2: from s - 2
    for t in range(1, n_frames):
        from_prev = np.concatenate([[NEG_INF], score[:-1]])
        from_skip = np.where(skip_ok, np.concatenate([[NEG_INF, NEG_INF], score[:-2]]), NEG_INF)
        options = np.stack([score, from_prev, from_skip])
        back[t] = options.argmax(axis=0)
        score = options.max(axis=0) + frame_scores(t)
    state = n_states - 1 if score[-1] >= score[-2] else n_states - 2
    path = np.empty(n_frames, np.int64)
    for t in range(n_frames - 1, -1, -1):
        path[t] = state
        state -= int(back[t, state])  # an int8 would make the state an int8 too (NumPy 2), past 127 states
    spans = []
    for k in range(n_tokens):
        frames = np.flatnonzero(path == 2 * k + 1)
        spans.append(TokenSpan(int(frames[0]), int(frames[-1]), float(emissions[k, frames].mean())))
    return spans


def group_words(pieces: list[bytes]) -> list[list[int]]:
    """Token indices grouped into words: a word starts at a token whose text begins with a space (the
    LLM's tokenizer marks word starts so); punctuation tokens stay with the word before them."""
    words: list[list[int]] = []
    for i, piece in enumerate(pieces):
        if not words or piece[:1].isspace():
            words.append([i])
        else:
            words[-1].append(i)
    return words


@dataclass(frozen=True)
class FrameClock:
    """CTC frames -> seconds in the original audio: frame 0 starts at `origin` (the segment's start less
    the zeros put before it), each lasts `frame_s`; words are kept inside [start, end], the segment."""

    origin: float
    frame_s: float
    start: float
    end: float

    def at(self, frame: float) -> float:
        return min(max(self.origin + frame * self.frame_s, self.start), self.end)


def word_timings(pieces: list[bytes], classes: np.ndarray, blank: np.ndarray, emissions: np.ndarray,
                 clock: FrameClock) -> list[Word]:
    """The transcript's words with their times.

    pieces: each token's text; classes: each token's CTC class (0: the head has no class for it, its word
    is timed by its other tokens or, failing those, fills the gap between its neighbours); blank [T] and
    emissions [n aligned tokens, T]: the head's log-posteriors of the blank and of each token with a class."""
    aligned = np.flatnonzero(classes > 0)
    spans = [TokenSpan(-1, -1, 0.0)] * len(pieces)
    for k, span in zip(aligned, forced_alignment(blank, emissions, classes[aligned])):
        spans[k] = span
    groups = group_words(pieces)
    timed = []  # (first frame, last frame, probability) or None
    for group in groups:
        # A punctuation token's spike can come in the pause after its word: it does not time the word.
        spoken = [k for k in group if any(chr(b).isalnum() for b in pieces[k] if b < 128)] or group
        own = [spans[k] for k in spoken if spans[k].first >= 0]
        if own:
            timed.append((own[0].first, own[-1].last, float(np.exp(np.mean([s.log_prob for s in own])))))
        else:
            timed.append(None)
    words = []
    for i, group in enumerate(groups):
        text = " ".join(b"".join(pieces[k] for k in group).decode("utf-8", errors="replace").split())
        if not text:
            continue  # a lone space token
        text = " " + text  # every word with its leading space, like the transcript's words
        next_start = next((t[0] for t in timed[i + 1:] if t is not None), None)
        if timed[i] is None:  # between its neighbours' times
            start = words[-1].end if words else clock.start
            end = clock.at(next_start) if next_start is not None else clock.end
            words.append(Word(text, start, max(start, end), 0.0))
            continue
        first, last, probability = timed[i]
        words.append(Word(text, clock.at(first), clock.at(last + 1), probability))
    return words


HOP_S = 0.01  # the loudness track's resolution


def fit_to_sound(words: list[Word], audio: np.ndarray, audio_start: float, floor_db: float = 35.0,
                 above_noise_db: float = 10.0, max_before: float = 0.3, max_after: float = 0.6) -> list[Word]:
    """Each word's edges moved to the sound: a start goes back while the audio before it is loud (at
    most `max_before`) or forward while it is quiet; an end goes forward while loud (at most `max_after`)
    or back while quiet. Loud: a 10 ms frame within `floor_db` of the segment's loudest and `above_noise_db`
    over its noise floor (its quietest tenth; 10 dB was chosen on training voices under noise). A word never
    crosses its neighbours, nor the audio's edges."""
    hop = int(HOP_S * SAMPLE_RATE)
    n = len(audio) // hop
    if not words or n == 0:
        return words
    db = 10 * np.log10(np.mean(audio[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = db > max(db.max() - floor_db, np.percentile(db, 10) + above_noise_db)
    at = lambda t: min(max(int(round((t - audio_start) / HOP_S)), 0), n)
    time_of = lambda k: audio_start + k * HOP_S
    fitted: list[Word] = []
    for i, word in enumerate(words):
        low = at(fitted[-1].end) if fitted else 0
        high = at(words[i + 1].start) if i + 1 < len(words) else n
        start, end = at(word.start), at(word.end)
        if start < n and loud[start]:
            start = _edge(loud, start, -1, max(low, start - int(max_before / HOP_S)))
        else:
            while start < end - 1 and start < n and not loud[start]:
                start += 1
        if end > 0 and loud[end - 1]:
            end = _edge(loud, end - 1, 1, min(high, end + int(max_after / HOP_S)) - 1) + 1
        else:
            while end > start + 1 and not loud[end - 1]:
                end -= 1
        fitted.append(Word(word.word, time_of(start), time_of(max(end, start)), word.probability))
    return fitted


def _edge(loud: np.ndarray, k: int, step: int, limit: int, max_gap: int = int(0.12 / HOP_S)) -> int:
    """From loud frame k, the farthest loud frame in direction `step` up to `limit`, across quiet gaps of
    at most `max_gap` frames (the closure before a stop consonant, a soft fricative)."""
    best, gap = k, 0
    while k != limit and 0 <= k + step < len(loud):
        k += step
        if loud[k]:
            best, gap = k, 0
        else:
            gap += 1
            if gap > max_gap:
                break
    return best
