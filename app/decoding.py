"""Decoding of speech prompts, one or many at once (continuous batching): each prompt's beam search
(search.py) proposes, this module feeds the LLM and streams what is settled.

A batch of one new token per sequence costs far less than that many tokens one by one (2 CPU cores:
~7.6 ms for one, ~25 ms for eight), so file transcription decodes several segments together, and a
beam's hypotheses step together. Each hypothesis has a seat (its own KV cells, enough for the longest
segment and its token bound); a finished prompt hands its seats to the next request at once.
"""
from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable, Iterator, Protocol, Sequence

import numpy as np
from voxprompt.biasing import WordBias
from voxprompt.ctc import CtcPrefixScorer
from voxprompt.search import BeamSearch, Finished, RepetitionGuard


@dataclass(frozen=True)
class TokenPiece:
    token: int
    text: str  # the decoded text this token completes (may be "" inside a multi-byte character)


@dataclass(frozen=True)
class Request:
    key: Hashable  # handed back with every event of this request
    speech: np.ndarray  # [n, width] speech vectors
    max_new_tokens: int
    ctc: CtcPrefixScorer | None = None  # joint CTC/LLM scores; None: the LLM's alone
    beam: int = 0  # hypotheses kept; 0: the LLM's beam_size (at most that: a prompt has that many seats)
    given: tuple[int, ...] = ()  # tokens the transcript begins with, not searched (fed in the prompt's pass)
    bias: WordBias | None = None  # the context's words, favoured while spelled (biasing.py)


class PromptDecoder(Protocol):
    """What decoding needs from the LLM (SpeechPromptLLM): seats 0..n_seats-1, each its own sequence,
    beam_size of them per prompt."""

    n_seats: int
    beam_size: int
    guard: RepetitionGuard

    def capacity(self) -> int: ...
    def cells_for(self, speech: np.ndarray) -> int: ...
    def prefill(self, seat: int, speech: np.ndarray, given: Sequence[int] = ()) -> tuple[np.ndarray, int]: ...
    def step(self, feeds: list[tuple[int, int, int]]) -> list[np.ndarray]: ...
    def release(self, seat: int) -> None: ...
    def fork(self, source: int, destination: int) -> None: ...
    def is_stop(self, token: int) -> bool: ...
    def piece(self, token: int) -> bytes: ...


@dataclass
class _Prompt:
    request: Request
    search: BeamSearch
    pos: int  # where the next fed token goes (every hypothesis of a beam has the same length)
    streamed: int = 0  # tokens already handed out as TokenPiece
    utf8: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))


def decode_many(llm: PromptDecoder, requests: Iterable[Request], keep_going: Callable[[], bool] | None = None
                ) -> Iterator[tuple[Hashable, TokenPiece | Finished]]:
    """Transcript tokens for every request, as (key, TokenPiece) while decoding and (key, Finished) at
    the end. A beam streams the tokens all its hypotheses agree on (they are certain to stay).
    `keep_going`, asked before every step: False abandons what is in flight (a preview no longer wanted).

    Requests are pulled lazily, only when seats are free, so a producer that encodes audio on demand
    keeps just the segments being decoded in memory. Events of different requests interleave; each
    request's own events come in order."""
    capacity = llm.capacity()
    pending = iter(requests)
    active: list[_Prompt] = []
    free_seats = list(range(llm.n_seats - 1, -1, -1))

    def settle(prompt: _Prompt, forks: list[tuple[int, int]]):
        """Copy branching hypotheses' seats; stream newly settled tokens; release a finished prompt."""
        for source, destination in forks:
            llm.fork(source, destination)
        search = prompt.search
        tokens = search.result().tokens if search.done else search.stable_tokens()
        for token in tokens[prompt.streamed:]:
            yield prompt.request.key, TokenPiece(token, prompt.utf8.decode(llm.piece(token)))
        prompt.streamed = max(prompt.streamed, len(tokens))
        if search.done:
            active.remove(prompt)
            for seat in search.seats:
                llm.release(seat)
                free_seats.append(seat)
            yield prompt.request.key, search.result()

    try:
        while True:
            while len(free_seats) >= llm.beam_size:  # free seats take the next request
                request = next(pending, None)
                if request is None:
                    break
                if request.ctc is not None and request.ctc.hears_nothing:  # noise: the LLM would only invent
                    yield request.key, Finished([], None)
                    continue
                cells = llm.cells_for(request.speech)
                if cells > capacity:
                    raise ValueError(f"{len(request.speech)} speech vectors do not fit the LLM context "
                                     f"({capacity} cells); split the audio into shorter segments")
                width = min(request.beam, llm.beam_size) if request.beam > 0 else llm.beam_size
                seats = [free_seats.pop() for _ in range(width)]
                search = BeamSearch(seats, request.ctc, llm.is_stop, llm.guard,
                                    max(0, min(request.max_new_tokens, capacity - cells)), request.given,
                                    request.bias)
                prompt = _Prompt(request, search, 0)
                active.append(prompt)
                logits, prompt.pos = llm.prefill(seats[0], request.speech, request.given)
                yield from settle(prompt, search.advance({seats[0]: logits}))
            if not active or (keep_going is not None and not keep_going()):
                return
            # seats in increasing order (out of order, llama.cpp splits the batch)
            feeds = sorted((h.seat, h.tokens[-1], p.pos) for p in active for h in p.search.live)
            logits_by_seat = {seat: logits for (seat, _, _), logits in zip(feeds, llm.step(feeds))}
            for prompt in list(active):  # each reads its own seats' logits
                prompt.pos += 1
                yield from settle(prompt, prompt.search.advance(logits_by_seat))
    finally:  # an abandoned run (consumer stopped early, error) must not leave sequences in the cache
        for prompt in active:
            for seat in prompt.search.seats:
                llm.release(seat)


def generate(llm: PromptDecoder, speech: np.ndarray, max_new_tokens: int, ctc: CtcPrefixScorer | None = None
             ) -> Iterator[TokenPiece]:
    """One prompt's transcript tokens, streamed as they settle (a repetition loop stops them; decode_many's
    Finished says where its first copy ends). For tests and measurements; users go through Transcriber."""
    for _, event in decode_many(llm, [Request(None, speech, max_new_tokens, ctc)]):
        if isinstance(event, TokenPiece):
            yield event
