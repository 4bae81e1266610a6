"""Spliced training speech: word runs cut from real lines at their aligned edges and joined across lines
of one speaker, so the text is no line's text and every word is heard as that speaker said it."""
import numpy as np
import pytest

from voxprompt.audio import SAMPLE_RATE
from voxprompt.models.splice import (FADE_S, SpliceOptions, TimedLine, TimedWord, align, by_speaker, runs, splice,
                                     splice_text, spliced_utterances)


def tone_line(speaker: str, words: list[tuple[str, float, float]], seconds: float, freq: float) -> TimedLine:
    """A line whose 'words' are bursts of a tone (one frequency per line) at the given times, silence between."""
    audio = np.zeros(int(seconds * SAMPLE_RATE), np.float32)
    for _, start, end in words:
        a, b = int(start * SAMPLE_RATE), int(end * SAMPLE_RATE)
        audio[a:b] = 0.5 * np.sin(2 * np.pi * freq * np.arange(b - a) / SAMPLE_RATE)
    return TimedLine(audio, speaker, tuple(TimedWord(*w) for w in words))


LINE = tone_line("fotaq:FAYE", [("What", 0.1, 0.3), ("do", 0.5, 0.6), ("you", 0.6, 0.8), ("want?", 1.0, 1.4)], 1.6, 440)


def test_cuts_fall_mid_pause_or_near_the_shared_edge_of_touching_words():
    cuts = LINE.cuts() / SAMPLE_RATE
    assert cuts[[0, 1, 3, 4]] == pytest.approx([0.0, 0.4, 0.9, 1.6], abs=0.006)
    assert cuts[2] == pytest.approx(0.6, abs=0.03)


def test_a_cut_moves_off_a_late_edge_to_the_quiet_before_the_word():
    """The aligned start of 'do' is 80 ms late (inside its sound): the cut still lands in the pause."""
    late = TimedLine(LINE.audio, LINE.speaker, (TimedWord("What", 0.1, 0.3), TimedWord("do", 0.58, 0.6)))
    assert 0.3 <= late.cuts()[1] / SAMPLE_RATE <= 0.5


def test_a_piece_is_the_lines_audio_between_its_cuts_faded_only_inside_the_line():
    audio, words = LINE.piece(1, 3)
    assert words == ["do", "you"]
    a, b = int(0.4 * SAMPLE_RATE), int(0.9 * SAMPLE_RATE)
    fade = int(FADE_S * SAMPLE_RATE)
    assert len(audio) == b - a
    np.testing.assert_array_equal(audio[fade:-fade], LINE.audio[a + fade: b - fade])
    whole, _ = LINE.piece(0, 4)
    np.testing.assert_array_equal(whole, LINE.audio)  # the line's own edges are no cuts: nothing faded


def test_a_cut_inside_speech_is_faded_to_silence():
    touching = tone_line("x", [("one", 0.0, 0.5), ("two", 0.5, 1.0)], 1.0, 300)
    first, _ = touching.piece(0, 1)
    second, _ = touching.piece(1, 2)
    assert abs(first[-1]) < 1e-6 and abs(second[0]) < 1e-6  # no click where the tone was cut
    assert np.abs(first[: len(first) // 2]).max() > 0.4


def test_runs_are_cut_only_in_pauses():
    """'do you' are touching words: no run starts or ends between them."""
    assert list(LINE.clean()) == [True, True, False, True, True]
    assert runs(LINE, max_words=4, min_depth_db=25.0) == [(0, 1), (0, 3), (0, 4), (1, 3), (1, 4), (3, 4)]
    assert runs(LINE, max_words=2, min_depth_db=25.0) == [(0, 1), (1, 3), (3, 4)]


def test_spliced_text_is_the_runs_in_order_with_a_capital():
    assert splice_text([["and", "then,"], ["Joe?"]]) == "And then, Joe?"


def test_a_splice_joins_contiguous_word_runs_of_distinct_lines():
    lines = [LINE, tone_line("fotaq:FAYE", [("Go", 0.1, 0.4), ("away", 0.5, 0.9)], 1.0, 880),
             tone_line("fotaq:FAYE", [("Now", 0.2, 0.5)], 0.7, 1320)]
    options = SpliceOptions(pieces=(3, 3), max_run_words=2)
    for seed in range(20):
        audio, text = splice(lines, np.random.default_rng(seed), options)
        words = text.split()
        runs = [[w.text for w in line.words] for line in lines]
        # every run is a contiguous stretch of one line, each line used at most once
        used, k = set(), 0
        while k < len(words):
            matches = [(i, n) for i, run in enumerate(runs) if i not in used for n in (2, 1)
                       for s in range(len(run) - n + 1)
                       if [w.lower() for w in run[s:s + n]] == [w.lower() for w in words[k:k + n]]]
            assert matches, text
            i, n = matches[0]
            used.add(i)
            k += n
        assert len(used) == 3
        # the audio holds each line's own tone (its frequency): nothing else was put in
        spectrum = np.abs(np.fft.rfft(audio))
        freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
        for f in (440, 880, 1320):
            assert spectrum[np.abs(freqs - f) < 20].max() > 10 * np.median(spectrum)


def test_speakers_are_never_mixed_and_lone_lines_are_left_out():
    lines = [LINE, tone_line("fotaq:JOE", [("Hi", 0.1, 0.3)], 0.5, 600),
             tone_line("fotaq:JOE", [("there", 0.1, 0.4)], 0.5, 700),
             tone_line("drascula:BJ", [("Alone", 0.1, 0.4)], 0.5, 800)]
    groups = by_speaker(lines)
    assert set(groups) == {"fotaq:JOE"}
    for u in spliced_utterances(groups, 10, seed=1, p_augment=0.0):
        assert u.source == "splice:fotaq:JOE"
        assert set(u.text.lower().split()) <= {"hi", "there"}


def test_spliced_utterances_are_the_same_for_a_seed():
    groups = {"s": [LINE, tone_line("s", [("Go", 0.1, 0.4), ("away", 0.5, 0.9)], 1.0, 880)]}
    a = list(spliced_utterances(groups, 5, seed=3))
    b = list(spliced_utterances(groups, 5, seed=3))
    assert [u.text for u in a] == [u.text for u in b]
    assert all(np.array_equal(x.audio, y.audio) for x, y in zip(a, b))


@pytest.mark.slow
def test_the_models_alignment_cuts_a_real_line_in_its_pause(transcriber):
    """Two phrases of real speech with a second of silence between: the cut between them lies in the silence."""
    from voxprompt.models.tts import TRAIN_VOICES, synthesize

    voice = next(v for v in TRAIN_VOICES if v.engine == "espeak")
    first, second = synthesize(voice, "Please leave your message."), synthesize(voice, "Thank you.")
    gap = np.zeros(SAMPLE_RATE, np.float32)
    audio = np.concatenate([first, gap, second])
    words = align(transcriber, audio, "Please leave your message. Thank you.", min_probability=0.0)
    assert words is not None and [w.text for w in words] == ["Please", "leave", "your", "message.", "Thank", "you."]
    cut = TimedLine(audio, "tts", words).cuts()[4] / SAMPLE_RATE
    assert len(first) / SAMPLE_RATE < cut < (len(first) + len(gap)) / SAMPLE_RATE
