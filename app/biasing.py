"""Contextual biasing: the words of a context (`--hotwords`, `--context`) get a bonus in the beam search
while a hypothesis spells them, token by token along a prefix tree, and the search proposes their next
token even when the LLM does not rank it among its best (the CTC head still has to hear it).

A bonus given to a word that is then not finished is taken back, so only whole context words gain
(the scheme of Hall et al. 2015, "Composition-based on-the-fly rescoring", as icefall's context graph
and NeMo's word boosting apply it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from voxprompt.ctc import spelled_words

BONUS = 3.0  # per token of a context word, in the beam's score units (joint CTC/LLM log-probabilities):
# on held-out voices 1.5 spelled 34 of 120 terms, 3.0 50, 4.5 59 (session 17, before the CTC gate in search.py)


@dataclass(frozen=True)
class BiasState:
    node: int = 0  # where a hypothesis stands in the tree: 0 between words, else inside a context word
    pending: float = 0.0  # bonus given to the word being spelled: taken back unless it is completed


ROOT = BiasState()


class WordBias:
    """A prefix tree over the token spellings of some words (inside a sentence and first in one, as
    written and capitalised)."""

    def __init__(self, spellings: Iterable[tuple[list[int], bool]], continues_word: Callable[[int], bool],
                 bonus: float = BONUS):
        """`spellings`: (tokens, first) pairs, `first` for a spelling that only opens a transcript;
        `continues_word(token)`: whether a token goes on the word before it (no space, not punctuation)."""
        self.bonus = bonus
        self.continues_word = continues_word
        self._children: list[dict[int, int]] = [{}, {}]  # node 0: inside a sentence; node 1: a transcript's start
        self._complete: list[bool] = [False, False]
        for tokens, first in spellings:
            node = 1 if first else 0
            for token in tokens:
                if token not in self._children[node]:
                    self._children.append({})
                    self._complete.append(False)
                    self._children[node][token] = len(self._children) - 1
                node = self._children[node][token]
            self._complete[node] = True
        self._first = {**self._children[0], **self._children[1]}  # a transcript may open either way

    @classmethod
    def for_text(cls, text: str, tokenize: Callable[[str], list[int]], continues_word: Callable[[int], bool],
                 bonus: float = BONUS) -> "WordBias | None":
        """The words of a context worth favouring; None when it has none. Short lowercase words ("a",
        "the", "for") are left to the LLM: favoured, they would be slipped in anywhere."""
        words = {w for w in spelled_words(text) if len(w) >= 4 or w != w.lower() or any(c.isdigit() for c in w)}
        if not words:
            return None
        spellings = []
        for word in words:
            for form in {word, word[0].upper() + word[1:]}:
                spellings += [(tokenize(" " + form), False), (tokenize(form), True)]
        return cls(spellings, continues_word, bonus)

    def _roots(self, at_start: bool) -> dict[int, int]:
        return self._first if at_start else self._children[0]

    def next_tokens(self, state: BiasState, at_start: bool) -> list[int]:
        """Tokens that go on spelling a context word from here, or begin one."""
        inside = list(self._children[state.node]) if state.node > 1 else []
        between = state.node <= 1 or self._complete[state.node]
        return inside + (list(self._roots(at_start)) if between else [])

    def advance(self, state: BiasState, token: int, at_start: bool, heard: bool = True) -> tuple[BiasState, float]:
        """The state after `token` and the change to the hypothesis' score. A token the audio does not
        bear out (`heard` False) gains nothing and ends the word being spelled."""
        child = self._children[state.node].get(token) if state.node > 1 and heard else None
        if child is not None:
            return BiasState(child, state.pending + self.bonus), self.bonus
        # leaving the word: a completed one keeps its bonus unless this token goes on the same word
        kept = self._complete[state.node] and not self.continues_word(token)
        delta = 0.0 if kept or state.node <= 1 else -state.pending
        start = self._roots(at_start).get(token) if heard else None
        if start is not None:
            return BiasState(start, self.bonus), delta + self.bonus
        return ROOT, delta

    def finish(self, state: BiasState) -> float:
        """The change to a hypothesis' score when it ends here (an unfinished word's bonus comes back)."""
        return 0.0 if state.node <= 1 or self._complete[state.node] else -state.pending
