"""Contexts for training prompts: teach the model to use `--context` without leaning on it.

A share of stage-2 prompts carries a context made the way users write one: a few of the utterance's
rarer words (names, terms: what a user would list) among distractors drawn from other utterances, and
sometimes distractors only, so that a context word is never written unless it is heard. Clips of
sentences with coined words (`dataset --coined`: names and terms no dictionary has) carry them in
their source, and their contexts list them: the only way to learn to copy a spelling from the prompt.
"""
from __future__ import annotations

import random
import re

RARE_MIN_LETTERS = 6  # a word this long, or a capitalised one inside a sentence, is what a user would list
COMMON = frozenset("""about above after again against because before being below between could during
every having other should their there these those through under until where which while would people
little really something nothing thought through around another between""".split())


def rare_words(text: str) -> list[str]:
    """The words of `text` a user might put in a context: long ones and names, as written, no repeats."""
    words = re.findall(r"[A-Za-z][A-Za-z'-]*[A-Za-z]", text)
    found, seen = [], set()
    for i, word in enumerate(words):
        rare = (len(word) >= RARE_MIN_LETTERS and word.lower() not in COMMON) or (i > 0 and word[0].isupper())
        if rare and word.lower() not in seen:
            seen.add(word.lower())
            found.append(word)
    return found


def training_context(text: str, pool: list[str], rng: random.Random, p_relevant: float = 0.8) -> str:
    """A context for one training utterance: 1-3 of its rare words (with probability p_relevant) among
    2-8 distractors from `pool`, shuffled, comma-separated."""
    own = rare_words(text)
    chosen = rng.sample(own, min(len(own), rng.randint(1, 3))) if own and rng.random() < p_relevant else []
    said = {w.lower() for w in re.findall(r"[A-Za-z'-]+", text)}
    return _among_distractors(chosen, said, pool, rng)


def _among_distractors(words: list[str], said: set[str], pool: list[str], rng: random.Random) -> str:
    """`words` with 2-8 words of `pool` that were not said (lower case), shuffled, comma-separated."""
    distractors = [w for w in rng.sample(pool, min(len(pool), 12)) if w.lower() not in said][: rng.randint(2, 8)]
    chosen = list(words) + distractors
    rng.shuffle(chosen)
    return ", ".join(chosen)


COINED_TAG = "coined:"
P_COINED_CONTEXT = 0.9  # a coined clip's context lists its words this often; without, it is spelt from sound


def coined_source(voice: str, words: tuple[str, ...]) -> str:
    """An utterance's source that names the coined words it says: "coined:w1,w2|voice"."""
    return f"{COINED_TAG}{','.join(words)}|{voice}"


def coined_words(source: str) -> list[str]:
    """The coined words a source names ([] for any other utterance)."""
    if not source.startswith(COINED_TAG):
        return []
    return [w for w in source[len(COINED_TAG):].split("|", 1)[0].split(",") if w]


def coined_context(words: list[str], pool: list[str], rng: random.Random) -> str:
    """A context for a coined clip: its words (P_COINED_CONTEXT of the time) among 2-8 distractors."""
    own = list(words) if rng.random() < P_COINED_CONTEXT else []
    return _among_distractors(own, {w.lower() for w in words}, pool, rng)
