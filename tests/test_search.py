"""Beam search: greedy at beam 1, better sequences than greedy past it, seats copied faithfully."""
import numpy as np
import pytest

from conftest import ASTERISK_SOUNDS
from voxprompt.audio import load_audio
from voxprompt.ctc import CtcPrefixScorer
from voxprompt.llm import LlmOptions
from voxprompt.models.evaluate import wer
from voxprompt.search import BeamSearch, RepetitionGuard
from voxprompt.transcriber import Transcriber

STOP = 0
VOCAB = 8


def toy_llm(table: dict[tuple[int, ...], dict[int, float]]):
    """Next-token logits after a token prefix: the listed probabilities, the rest of the vocabulary nearly 0."""
    def logits(tokens: list[int]) -> np.ndarray:
        p = np.full(VOCAB, 1e-6)
        for token, prob in table.get(tuple(tokens), {STOP: 1.0}).items():
            p[token] = prob
        return np.log(p)
    return logits


# Greedy takes 1 (0.55) and then meets an even split; the path through 2 is likelier (0.45 * 0.95).
GARDEN_PATH = {(): {1: 0.55, 2: 0.45}, (1,): {3: 0.5, 4: 0.5}, (2,): {5: 0.95, 6: 0.05}}


def run(search: BeamSearch, llm) -> list[int]:
    """Drive a search as decoding.py does: logits for each live hypothesis' seat until it is done."""
    while not search.done:
        live = {h.seat: llm(h.tokens) for h in search.live}
        forks = search.advance(live)
        seats = [h.seat for h in search.live]
        assert len(set(seats)) == len(seats) and set(seats) <= set(search.seats)  # one seat each, its own
        for source, destination in forks:
            assert source in live and destination not in [s for s, _ in forks]
    return search.result().tokens


def search(beam: int, ctc: CtcPrefixScorer | None = None, max_new: int = 10, given=()) -> BeamSearch:
    return BeamSearch(list(range(beam)), ctc, lambda t: t == STOP, RepetitionGuard(), max_new, given)


def test_beam_one_is_greedy_and_a_wider_beam_finds_the_likelier_transcript():
    llm = toy_llm(GARDEN_PATH)
    assert run(search(1), llm) == [1, 3]
    assert run(search(2), llm) == [2, 5]


def test_given_tokens_are_kept_and_the_search_goes_on_from_them():
    llm = toy_llm(GARDEN_PATH)
    assert run(search(2, given=[1]), llm) in ([1, 3], [1, 4])  # the beam alone would take 2, 5
    assert run(search(2, given=[2, 5]), llm) == [2, 5]


def test_given_tokens_carry_their_exact_ctc_state():
    class_of = np.arange(VOCAB)
    frames = np.log(np.random.default_rng(0).dirichlet(np.ones(VOCAB), size=12))
    ctc = CtcPrefixScorer.from_log_probs(frames, class_of, weight=0.5, candidates=4, floor=-50)
    searched = ctc.initial()
    for token in (3, 3, 5):
        searched = ctc.extend(searched, np.array([token]))[0]
    given = search(1, ctc, given=[3, 3, 5]).live[0].ctc
    assert given.psi == pytest.approx(searched.psi) and np.allclose(given.r_b, searched.r_b)


def test_the_token_bound_ends_every_hypothesis():
    endless = lambda tokens: np.log(np.array([1e-6] * 6 + [0.4, 0.6]))  # noqa: E731 (never ends)
    tokens = run(BeamSearch([0, 1], None, lambda t: t == STOP, RepetitionGuard(max_period=0), 5), endless)
    assert len(tokens) == 5


def test_a_loop_is_cut_to_its_first_copy():
    looping = toy_llm({tuple([1, 2] * n + [1] * k): {2 if k else 1: 1.0} for n in range(20) for k in (0, 1)})
    s = search(2, max_new=40)
    tokens = run(s, looping)
    assert tokens == [1, 2] and s.result().loop_at == 2


def test_tokens_the_ctc_head_cannot_judge_lose_to_ones_it_can():
    class_of = np.zeros(VOCAB, np.int64)
    class_of[[3, 4]] = [1, 2]
    flat = np.log(np.full((6, 3), 1 / 3))  # the head has no opinion between its classes
    ctc = CtcPrefixScorer.from_log_probs(flat, class_of, weight=0.3, candidates=3)
    s = search(1, ctc, max_new=1)
    s.advance({0: toy_llm({(): {5: 0.6, 4: 0.3, 2: 0.1}})([])})  # the LLM prefers 5, which has no class
    assert s.live[0].tokens == [4]
    s = search(1, ctc, max_new=1)
    s.advance({0: toy_llm({(): {5: 0.6, 6: 0.3, 2: 0.1}})([])})  # no candidate has a class: the LLM decides
    assert s.live[0].tokens == [5]


def test_ctc_evidence_overrules_a_confident_llm():
    class_of = np.arange(VOCAB)
    frames = np.full((6, VOCAB), np.log(0.01))
    frames[:, 0] = np.log(0.5)
    frames[2, 2] = np.log(0.9)  # the audio clearly says 2, never 1
    frames -= np.logaddexp.reduce(frames, axis=1, keepdims=True)
    ctc = CtcPrefixScorer.from_log_probs(frames, class_of, weight=0.5, candidates=4, floor=-50)
    llm = toy_llm(GARDEN_PATH)
    assert run(search(1, ctc), llm)[0] == 2


@pytest.fixture(scope="module")
def two_seats(default_model_dir):
    t = Transcriber(default_model_dir, llm_options=LlmOptions(beam_size=2))
    yield t
    t.close()


def test_a_forked_seat_continues_exactly_as_its_source(two_seats, recording_audio):
    llm = two_seats.llm
    speech = two_seats.encoder(recording_audio[:3 * 16000])
    logits, pos = llm.prefill(0, speech)
    first = int(np.argmax(logits))
    llm.fork(0, 1)
    try:
        a, b = llm.step([(0, first, pos), (1, first, pos)])
        assert np.abs(a - b).max() < 1e-3 and int(np.argmax(a)) == int(np.argmax(b))
    finally:
        llm.release(0)
        llm.release(1)


def _distance(logits: np.ndarray, other: np.ndarray) -> float:
    """Total variation between the next-token distributions two logit vectors give."""
    p, q = (np.exp(x - x.max()) for x in (logits, other))
    return 0.5 * float(np.abs(p / p.sum() - q / q.sum()).sum())


def test_given_tokens_are_read_as_if_decoded_one_by_one(two_seats, recording_audio):
    """They ride in the prompt's batch: same positions, same cells, so the same next-token distribution and
    the same greedy transcript as when the search chose them itself. Distributions, not raw logits: a
    build's batched kernels round apart from its one-row ones (up to 0.6 in an unlikely token's logit,
    by build and key cache type), which moves the distribution by under 0.01, while the same tokens
    with two of them swapped, as a misplaced row would read them, move it by over 0.1."""
    segment = next(two_seats.segments(iter([recording_audio])))
    tokens = two_seats.transcribe_segment(segment, beam=1).tokens
    assert len(tokens) >= 6
    speech, llm = two_seats.encoder(segment.framed()), two_seats.llm

    def prefill(given):
        try:
            logits, pos = llm.prefill(0, speech, given)
            return logits.copy(), pos
        finally:
            llm.release(0)  # the module's other tests find the seat empty, even after a failure

    try:
        logits, pos = llm.prefill(0, speech)
        for token in tokens[:4]:
            logits = llm.step([(0, token, pos)])[0].copy()
            pos += 1
    finally:
        llm.release(0)
    at_once, pos_at_once = prefill(tokens[:4])
    swapped, _ = prefill([tokens[0], tokens[2], tokens[1], tokens[3]])
    assert pos_at_once == pos
    assert _distance(at_once, logits) < 0.03 < _distance(swapped, logits)
    assert two_seats.transcribe_segment(segment, beam=1, given=tokens[:4]).tokens == tokens


def test_a_decoding_told_to_stop_gives_nothing_and_frees_its_seats(two_seats, recording_audio):
    t = two_seats
    segment = next(t.segments(iter([recording_audio])))
    whole = t.transcribe_segment(segment)
    steps = []
    assert t.transcribe_segment(segment, keep_going=lambda: steps.append(1) or len(steps) < 3) is None
    assert len(steps) == 3
    assert t.transcribe_segment(segment).tokens == whole.tokens  # the seats came back empty


def test_a_beam_makes_fewer_word_errors_than_greedy_on_unseen_real_prompts(asterisk_transcripts, default_model_dir):
    from voxprompt.models.dataset import is_real_dev

    names = sorted(n for n in asterisk_transcripts if is_real_dev(ASTERISK_SOUNDS / f"{n}.wav")
                   and (ASTERISK_SOUNDS / f"{n}.wav").exists())  # all 138: on 60 a 1-point gain is noise
    audio = [load_audio(ASTERISK_SOUNDS / f"{n}.wav") for n in names]
    refs = [asterisk_transcripts[n] for n in names]
    results = {}
    for beam in (1, 4):
        t = Transcriber(default_model_dir, llm_options=LlmOptions(beam_size=beam))
        try:
            results[beam] = [" ".join(s.text for s in map(t.transcribe_segment, t.segments(iter([a])))) for a in audio]
        finally:
            t.close()
    assert wer(refs, results[4]) < wer(refs, results[1]) - 0.01
