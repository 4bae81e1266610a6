"""Repetition loops are cut after their first copy; ordinary repeats are left alone."""
from voxprompt.llm import RepetitionGuard

guard = RepetitionGuard(max_period=16, min_span=8)


def first_loop(tokens):
    """Feed tokens one at a time, as decoding does; return (stopped at, keep) or None."""
    for n in range(1, len(tokens) + 1):
        keep = guard.loop_start(tokens[:n])
        if keep is not None:
            return n, keep
    return None


def test_phrase_loop_is_cut_after_one_copy():
    phrase = [11, 12, 13, 14, 15]
    tokens = [1, 2, 3] + phrase * 6
    stopped, keep = first_loop(tokens)
    assert tokens[:keep] == [1, 2, 3] + phrase
    assert stopped <= 3 + 2 * len(phrase)  # noticed by the end of the second copy


def test_single_token_loop():
    stopped, keep = first_loop([5, 6] + [7] * 20)
    assert keep == 3 and stopped == 10


def test_natural_short_repeats_pass():
    # "very, very", "no no", "that that": repeats spanning fewer than 8 tokens
    assert first_loop([1, 2, 2, 3, 4, 5, 4, 5, 6, 7, 7, 7, 8]) is None


def test_long_period_beyond_the_guard_passes():
    phrase = list(range(100, 120))  # 20 tokens: longer than max_period
    assert first_loop(phrase * 2) is None


def test_counting_loop_is_cut_after_one_copy():
    # "3 to mute the user, 4 to mute the user, 5 to mute the user, ..."
    phrase = [21, 22, 23, 24, 25, 26]
    tokens = [1, 2] + [n for k in range(3, 12) for n in [k] + phrase]
    stopped, keep = first_loop(tokens)
    assert tokens[:keep] == [1, 2, 3] + phrase
    assert stopped <= 2 + 4 * (1 + len(phrase))


def test_lists_that_change_in_several_places_pass():
    # "press 1 for sales, press 2 for support, press 3 for billing, ..."
    tokens = [t for k in range(6) for t in (30, 31, 40 + k, 32, 50 + k, 33)]
    assert first_loop(tokens) is None


def test_no_real_prompt_looks_like_a_loop(asterisk_transcripts, transcriber):
    """The published transcripts of the real recordings, tokenized by the LLM: none trips the guard."""
    texts = [t.strip() for t in asterisk_transcripts.values() if len(t.split()) > 3]
    assert len(texts) > 200
    flagged = [t for t in texts if first_loop(transcriber.llm.tokenize(t)) is not None]
    assert flagged == []
