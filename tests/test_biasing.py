"""Contextual biasing: the words of a context gain in the beam search while they are spelled, only
whole ones keep the gain, and only where the audio bears them out."""
import numpy as np
import pytest

from voxprompt.biasing import ROOT, WordBias
from voxprompt.ctc import CtcPrefixScorer
from voxprompt.search import BeamSearch, RepetitionGuard

PIECES = ["<end>", " The", " dose", " of", " apix", "aban", " is", "Apix", ".", "x", " a", " pix"]
STOP = 0
BONUS = 3.0


def tok(*pieces: str) -> list[int]:
    return [PIECES.index(p) for p in pieces]


def continues_word(token: int) -> bool:
    return PIECES[token][:1].isalnum()


def context_bias(bonus: float = BONUS) -> WordBias:
    # "apixaban" inside a sentence (" apix", "aban") and opening one ("Apix", "aban")
    return WordBias([(tok(" apix", "aban"), False), (tok("Apix", "aban"), True)], continues_word, bonus)


def spell(bias: WordBias, tokens: list[int], end: bool = False) -> float:
    """The bias a hypothesis collects along these tokens (and at its end)."""
    state, total = ROOT, 0.0
    for i, token in enumerate(tokens):
        state, delta = bias.advance(state, token, at_start=i == 0)
        total += delta
    return total + (bias.finish(state) if end else 0.0)


def test_a_finished_context_word_keeps_its_bonus_and_an_unfinished_one_gives_it_back():
    bias = context_bias()
    assert spell(bias, tok(" The", " dose", " of", " apix", "aban", " is")) == 2 * BONUS
    assert spell(bias, tok(" The", " dose", " of", " apix", "aban"), end=True) == 2 * BONUS
    assert spell(bias, tok(" The", " dose", " of", " apix", " is")) == 0.0
    assert spell(bias, tok(" The", " dose", " of", " apix"), end=True) == 0.0


def test_a_word_that_runs_on_past_the_context_word_gains_nothing():
    assert spell(context_bias(), tok(" of", " apix", "aban", "x", " is")) == 0.0
    assert spell(context_bias(), tok(" of", " apix", "aban", ".")) == 2 * BONUS  # punctuation ends a word


def test_a_transcript_opens_with_the_spelling_that_starts_a_sentence():
    bias = context_bias()
    assert spell(bias, tok("Apix", "aban", " is")) == 2 * BONUS
    assert spell(bias, tok(" The", "Apix", "aban")) == 0.0  # not a word start inside a sentence
    assert set(bias.next_tokens(ROOT, at_start=True)) == set(tok("Apix", " apix"))
    assert set(bias.next_tokens(ROOT, at_start=False)) == set(tok(" apix"))


def test_a_token_the_audio_does_not_bear_out_gains_nothing_and_ends_the_word():
    bias = context_bias()
    state, gained = bias.advance(ROOT, tok(" apix")[0], at_start=False)
    assert gained == BONUS
    state, delta = bias.advance(state, tok("aban")[0], at_start=False, heard=False)
    assert state == ROOT and delta == -BONUS


def toy_llm(tokens: list[int]) -> np.ndarray:
    """The LLM would rather write " a pix" than the context word, which it ranks below its best three."""
    p = np.full(len(PIECES), 1e-4)
    table = {(): {10: 0.45, 1: 0.25, 2: 0.2, 4: 0.05}, (10,): {11: 0.9, STOP: 0.1}, (10, 11): {STOP: 1.0},
             (4,): {5: 0.9, 9: 0.1}, (4, 5): {STOP: 1.0}}
    for token, prob in table.get(tuple(tokens), {STOP: 1.0}).items():
        p[token] = prob
    return np.log(p)


def run(search: BeamSearch) -> list[int]:
    while not search.done:  # seats need no copying here: the toy LLM reads only the tokens
        search.advance({h.seat: toy_llm(h.tokens) for h in search.live})
    return search.result().tokens


def search(bias: WordBias | None, ctc: CtcPrefixScorer | None = None) -> BeamSearch:
    return BeamSearch([0, 1], ctc, lambda t: t == STOP, RepetitionGuard(), 6, bias=bias)


def test_the_search_spells_a_context_word_the_llm_alone_would_not_propose():
    assert run(search(None)) == tok(" a", " pix")
    assert run(search(context_bias())) == tok(" apix", "aban")


def frames_saying(tokens: list[int], n_frames: int = 12) -> np.ndarray:
    """CTC posteriors over frames that clearly say these tokens, with blanks between."""
    frames = np.full((n_frames, len(PIECES)), np.log(1e-6))
    frames[:, 0] = np.log(0.9)
    for i, token in enumerate(tokens):
        frames[2 + 3 * i, token], frames[2 + 3 * i, 0] = np.log(0.9), np.log(0.05)
    return frames - np.logaddexp.reduce(frames, axis=1, keepdims=True)


@pytest.mark.parametrize("heard, expected", [(tok(" apix", "aban"), tok(" apix", "aban")),
                                              (tok(" a", " pix"), tok(" a", " pix"))])
def test_a_context_word_wins_only_where_the_audio_bears_it_out(heard, expected):
    """However large its bonus: a context word whose tokens the CTC head does not hear is not proposed."""
    ctc = CtcPrefixScorer.from_log_probs(frames_saying(heard), np.arange(len(PIECES)), weight=0.5, candidates=3,
                                         floor=-50)
    assert run(search(context_bias(bonus=100.0), ctc)) == expected


def test_a_context_favours_its_words_but_not_the_short_common_ones():
    ids: dict[str, int] = {}

    def tokenize(text: str) -> list[int]:
        return [ids.setdefault(text, len(ids))]  # one token per spelling is enough here

    bias = WordBias.for_text("a ward round on INR and B12", tokenize, lambda t: False)
    opened = set(bias.next_tokens(ROOT, at_start=False))
    assert opened == {ids[" " + w] for w in ("ward", "Ward", "round", "Round", "INR", "B12")}
    assert WordBias.for_text("a an the", tokenize, lambda t: False) is None
