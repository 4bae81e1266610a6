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
