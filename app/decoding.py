"""Greedy decoding of speech prompts, one or many at once (continuous batching), each token the LLM's
argmax or, when the model has a CTC head, the best of its top candidates by joint CTC/LLM score (ctc.py).

A batch of one new token per sequence costs far less than that many tokens one by one (2 CPU cores:
~7.6 ms for one, ~25 ms for eight), so file transcription decodes several segments together. Each
sequence has a seat (its own KV cells, enough for the longest segment and its token bound); a finished
sequence hands its seat to the next request at once.
"""
from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Hashable, Iterable, Iterator, Protocol

import numpy as np

from voxprompt.ctc import CtcPrefixScorer


@dataclass(frozen=True)
class RepetitionGuard:
    """Stops a decoding loop. Exact: the tokens end in back-to-back copies of one n-gram (n <= max_period)
    spanning at least min_span tokens; natural repeats ("very, very") are shorter than that. Counting:
    `near_copies` copies of an n-gram (near_min_period <= n <= max_period) that differ in one place only
    ("3 to mute the user, 4 to mute the user, 5 to mute the user"); a spoken list differs in more."""

    max_period: int = 16
    min_span: int = 8
    near_min_period: int = 6
    near_copies: int = 3

    def loop_start(self, tokens: list[int]) -> int | None:
        """Where the repetition begins, keeping its first copy; None when the tail is no loop."""
        n = len(tokens)
        for period in range(1, self.max_period + 1):
            span = period * max(2, -(-self.min_span // period))
            if n >= span and all(tokens[n - span + i] == tokens[n - span + i % period] for i in range(span)):
                return n - span + period
        return self._counting_loop_start(tokens)

    def _counting_loop_start(self, tokens: list[int]) -> int | None:
        """Where a counting loop's second copy begins (its copies start at a changing token)."""
        n = len(tokens)
        for period in range(self.near_min_period, self.max_period + 1):
            start = n - self.near_copies * period
            if start < 0:
                return None
            first = tokens[start: start + period]
            changing = {i for k in range(1, self.near_copies) for i, t in enumerate(tokens[start + k * period:
                                                                                          start + (k + 1) * period])
                        if t != first[i]}
            if len(changing) == 1:
                return start + changing.pop() + period
        return None


@dataclass(frozen=True)
class TokenPiece:
    token: int
    text: str  # the decoded text this token completes (may be "" inside a multi-byte character)


@dataclass(frozen=True)
class Request:
    key: Hashable  # handed back with every event of this request
    speech: np.ndarray  # [n, width] speech vectors
    max_new_tokens: int
    ctc: CtcPrefixScorer | None = None  # joint CTC/LLM choice of each token (it keeps state); None: argmax


@dataclass(frozen=True)
class Finished:
    tokens: list[int]  # the transcript's tokens, a repetition loop cut to its first copy
    loop_at: int | None  # where the guard cut a loop, None when there was none


class PromptDecoder(Protocol):
    """What decoding needs from the LLM (SpeechPromptLLM): seats 0..n_parallel-1, each its own sequence."""

    n_parallel: int
    guard: RepetitionGuard

    def capacity(self) -> int: ...
    def cells_for(self, speech: np.ndarray) -> int: ...
    def prefill(self, seat: int, speech: np.ndarray) -> tuple[np.ndarray, int]: ...
    def step(self, feeds: list[tuple[int, int, int]]) -> list[np.ndarray]: ...
    def release(self, seat: int) -> None: ...
    def is_stop(self, token: int) -> bool: ...
    def piece(self, token: int) -> bytes: ...


@dataclass
class _Sequence:
    request: Request
    seat: int
    max_new: int
    pos: int = 0  # where the next fed token goes
    tokens: list[int] = field(default_factory=list)
    utf8: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))


def decode_many(llm: PromptDecoder, requests: Iterable[Request]) -> Iterator[tuple[Hashable, TokenPiece | Finished]]:
    """Greedy tokens for every request, as (key, TokenPiece) while decoding and (key, Finished) at the end.

    Requests are pulled lazily, only when a seat is free, so a producer that encodes audio on demand
    keeps just the segments being decoded in memory. Events of different requests interleave; each
    request's own events come in order."""
    capacity = llm.capacity()
    pending = iter(requests)
    active: dict[int, _Sequence] = {}
    free_seats = list(range(llm.n_parallel - 1, -1, -1))

    def advance(seq: _Sequence, logits: np.ndarray):
        """Choose the next token of `seq` from its logits; yield its event; drop it when finished."""
        if len(seq.tokens) >= seq.max_new:
            token = None
        elif seq.request.ctc is not None:
            token = seq.request.ctc.choose(logits, llm.is_stop)
        else:
            token = int(np.argmax(logits))
        loop_at = None
        if token is not None and not llm.is_stop(token):
            seq.tokens.append(token)
            loop_at = llm.guard.loop_start(seq.tokens)
            if loop_at is None:
                yield seq.request.key, TokenPiece(token, seq.utf8.decode(llm.piece(token)))
                return
        del active[seq.seat]
        llm.release(seq.seat)
        free_seats.append(seq.seat)
        kept = seq.tokens if loop_at is None else seq.tokens[:loop_at]
        yield seq.request.key, Finished(kept, loop_at)

    try:
        while True:
            while free_seats:  # a free seat takes the next request
                request = next(pending, None)
                if request is None:
                    break
                if request.ctc is not None and request.ctc.hears_nothing:  # noise: the LLM would only invent
                    yield request.key, Finished([], None)
                    continue
                prompt = llm.cells_for(request.speech)
                if prompt > capacity:
                    raise ValueError(f"{len(request.speech)} speech vectors do not fit the LLM context "
                                     f"({capacity} cells); split the audio into shorter segments")
                seq = _Sequence(request, free_seats.pop(), max(0, min(request.max_new_tokens, capacity - prompt)))
                active[seq.seat] = seq
                logits, seq.pos = llm.prefill(seq.seat, request.speech)
                yield from advance(seq, logits)
            if not active:
                return
            running = [active[seat] for seat in sorted(active)]  # out of order, llama.cpp splits the batch
            rows = llm.step([(s.seat, s.tokens[-1], s.pos) for s in running])
            for seq, logits in zip(running, rows):
                seq.pos += 1
                yield from advance(seq, logits)
    finally:  # an abandoned run (consumer stopped early, error) must not leave sequences in the cache
        for seat in list(active):
            llm.release(seat)
