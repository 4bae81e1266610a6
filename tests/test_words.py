"""Word timestamps: the CTC head's forced alignment of the final tokens, word edges fitted to the sound,
short subtitle cues cut at word times; and, through `voxprompt transcribe`, times that land on the words."""
import json
import re

import numpy as np
import pytest
import soundfile as sf

from conftest import run_voxprompt as voxprompt
from voxprompt.audio import SAMPLE_RATE
from voxprompt.subtitles import SubtitleOptions, word_cues
from voxprompt.transcriber import Segment, Timing
from voxprompt.words import FrameClock, Word, fit_to_sound, forced_alignment, group_words, word_timings
from voxprompt.writers import open_writer

LOW = np.log(1e-4)


def emissions_with_spikes(n_frames: int, spikes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """blank [T] and [L, T]: token l is likely only on frame spikes[l], the blank everywhere else."""
    blank = np.full(n_frames, np.log(0.99))
    x = np.full((len(spikes), n_frames), LOW)
    for k, t in enumerate(spikes):
        x[k, t], blank[t] = np.log(0.9), np.log(0.05)
    return blank, x


def test_alignment_puts_each_token_on_its_spike():
    blank, x = emissions_with_spikes(12, [2, 5, 9])
    spans = forced_alignment(blank, x, np.array([7, 8, 9]))
    assert [(s.first, s.last) for s in spans] == [(2, 2), (5, 5), (9, 9)]
    assert all(s.log_prob == pytest.approx(np.log(0.9)) for s in spans)


def test_a_long_segment_aligns_every_token():
    spikes = list(range(1, 400, 3))  # 133 tokens: 267 states, more than a small integer type holds
    blank, x = emissions_with_spikes(400, spikes)
    spans = forced_alignment(blank, x, np.arange(1, len(spikes) + 1))
    assert [s.first for s in spans] == spikes


def test_a_repeated_token_needs_a_blank_between_its_copies():
    # two spikes of the same class on adjacent frames cannot be two tokens: the second copy moves on
    blank, x = emissions_with_spikes(8, [3, 4])
    spans = forced_alignment(blank, x, np.array([5, 5]))
    assert spans[0].last < spans[1].first - 1


def test_too_few_frames_for_the_tokens_leaves_them_unaligned():
    blank, x = emissions_with_spikes(2, [0, 1])
    assert [(s.first, s.last) for s in forced_alignment(blank, x[[0, 1, 1]], np.array([1, 2, 3]))] == [(-1, -1)] * 3


def test_words_start_at_a_spaced_token_and_keep_their_punctuation():
    assert group_words([b"Hello", b",", b" wor", b"ld", b"."]) == [[0, 1], [2, 3, 4]]
    assert group_words([b" I", b"'m", b" here"]) == [[0, 1], [2]]


def test_word_times_come_from_the_spikes_of_their_tokens():
    clock = FrameClock(origin=10.0 - 0.3, frame_s=0.08, start=10.0, end=12.0)  # 0.3 s of zeros put before
    pieces = [b" Hello", b",", b" wor", b"ld", b"."]
    classes = np.array([4, 5, 6, 0, 8])  # "ld" has no CTC class: its word is timed by " wor"
    blank, x = emissions_with_spikes(25, [6, 8, 12, 20])  # the full stop's spike lands in the pause after
    words = word_timings(pieces, classes, blank, x, clock)
    assert [w.word for w in words] == [" Hello,", " world."]
    assert words[0].start == pytest.approx(9.7 + 6 * 0.08) and words[0].end == pytest.approx(9.7 + 7 * 0.08)
    assert words[1].start == pytest.approx(9.7 + 12 * 0.08) and words[1].end == pytest.approx(9.7 + 13 * 0.08)
    assert 0.8 < words[0].probability <= 1.0


def test_a_word_the_head_cannot_hear_fills_the_gap_between_its_neighbours():
    clock = FrameClock(origin=0.0, frame_s=0.1, start=0.0, end=3.0)
    blank, x = emissions_with_spikes(30, [5, 20])
    words = word_timings([b" one", b" xyzzy", b" two"], np.array([3, 0, 4]), blank, x, clock)
    assert words[1].start == pytest.approx(words[0].end) and words[1].end == pytest.approx(2.0)
    assert words[1].probability == 0.0


def tone(start: float, end: float, total: float, level: float = 0.3, noise: float = 0.0) -> np.ndarray:
    t = np.arange(int(total * SAMPLE_RATE)) / SAMPLE_RATE
    audio = np.where((t >= start) & (t < end), level * np.sin(2 * np.pi * 220 * t), 0.0)
    return (audio + noise * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_word_edges_move_to_where_the_sound_starts_and_stops(noise):
    audio = tone(0.50, 0.90, 2.0, noise=noise)  # a word sounding from 0.5 to 0.9 s in a segment at 5 s
    (fitted,) = fit_to_sound([Word(" la", 5.58, 5.66, 0.9)], audio, audio_start=5.0)
    assert fitted.start == pytest.approx(5.50, abs=0.015) and fitted.end == pytest.approx(5.90, abs=0.015)
    (early,) = fit_to_sound([Word(" la", 5.30, 5.60, 0.9)], audio, audio_start=5.0)  # spike before the sound
    assert early.start == pytest.approx(5.50, abs=0.015)


def test_a_word_edge_never_crosses_its_neighbour():
    audio = tone(0.2, 1.8, 2.0)  # one continuous sound under two words
    first, second = fit_to_sound([Word(" a", 0.5, 0.6, 1.0), Word(" b", 1.0, 1.1, 1.0)], audio, 0.0)
    assert first.end <= second.start
    assert first.start == pytest.approx(0.2, abs=0.015)


def words_of(text: str, start: float, step: float) -> list[Word]:
    return [Word(" " + w, start + i * step, start + i * step + step * 0.8, 1.0) for i, w in enumerate(text.split())]


def test_cues_are_short_lines_that_follow_the_words():
    text = ("We can sit on the bank here and watch your stupid plane sink while the sun goes down over "
            "the river and nobody comes to help us at all today")
    words = words_of(text, 3.0, 0.3)
    cues = word_cues(words)
    assert " ".join(" ".join(c.lines) for c in cues) == text
    for cue in cues:
        assert 1 <= len(cue.lines) <= 2 and all(len(line) <= 42 for line in cue.lines)
    assert cues[0].start == words[0].start and cues[-1].end == words[-1].end
    assert all(a.end <= b.start for a, b in zip(cues, cues[1:]))


def test_a_sentence_end_or_a_pause_starts_a_new_cue():
    words = words_of("Stop. Go on", 0.0, 0.3) + words_of("later", 5.0, 0.3)
    assert [c.text for c in word_cues(words)] == ["Stop.", "Go on", "later"]
    assert [c.text for c in word_cues(words, SubtitleOptions(max_pause_s=10))] == ["Stop.", "Go on later"]


SRT_CUE = re.compile(r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})\n(.+)", re.S)


def srt_cues(text: str) -> list[tuple[float, float, list[str]]]:
    """Parse and validate an SRT file: numbered from 1, times in order, no cue overlapping the next."""
    cues = []
    for k, block in enumerate(text.strip().split("\n\n"), start=1):
        m = SRT_CUE.fullmatch(block)
        assert m and int(m[1]) == k, block
        t = [int(g) for g in m.groups()[1:9]]
        start = t[0] * 3600 + t[1] * 60 + t[2] + t[3] / 1000
        end = t[4] * 3600 + t[5] * 60 + t[6] + t[7] / 1000
        assert start <= end, block
        assert not cues or cues[-1][1] <= start, block
        cues.append((start, end, m[10].split("\n")))
    return cues


def test_srt_with_word_timestamps_writes_word_timed_cues(tmp_path):
    words = tuple(words_of("one two three four five six seven eight nine ten eleven twelve "
                           "thirteen fourteen fifteen sixteen seventeen eighteen", 1.0, 0.3))
    segment = Segment(0.8, 7.0, " ".join(w.word.strip() for w in words), [1], Timing(1, 1, 1, 1), words)
    w = open_writer("srt", tmp_path / "a.srt", tmp_path / "a.wav", word_timestamps=True)
    w.add(segment)
    w.add(Segment(8.0, 9.0, "Later.", [1], Timing(1, 1, 1, 1), (Word(" Later.", 8.2, 8.7, 1.0),)))
    w.close()
    cues = srt_cues((tmp_path / "a.srt").read_text())
    assert len(cues) >= 3 and cues[-1] == (8.2, 8.7, ["Later."])
    assert all(len(line) <= 42 for *_, lines in cues for line in lines)


@pytest.fixture(scope="module")
def phrases_with_known_times(asterisk_transcripts):
    """Three real prompts, each cut to its sound, joined by known pauses: where each phrase starts and
    ends is known to 10 ms."""
    from conftest import ASTERISK_SOUNDS
    from voxprompt.audio import load_audio

    parts, truth, t = [], [], 0.0
    for name, pause in (("vm-intro", 0.7), ("auth-thankyou", 1.1), ("vm-goodbye", 0.9)):
        audio = load_audio(ASTERISK_SOUNDS / f"{name}.wav")
        hop = SAMPLE_RATE // 100
        db = 10 * np.log10(np.mean(audio[: len(audio) // hop * hop].reshape(-1, hop) ** 2, axis=1) + 1e-12)
        loud = np.flatnonzero(db > db.max() - 30)
        speech = audio[loud[0] * hop: (loud[-1] + 1) * hop]
        parts += [np.zeros(int(pause * SAMPLE_RATE), np.float32), speech]
        t += pause
        truth.append((t, t + len(speech) / SAMPLE_RATE, asterisk_transcripts[name].strip()))
        t = truth[-1][1]
    parts.append(np.zeros(SAMPLE_RATE, np.float32))
    return np.concatenate(parts), truth


def test_transcribe_times_each_word_in_the_original_audio(tmp_path, phrases_with_known_times, default_model_dir):
    audio, truth = phrases_with_known_times
    sf.write(tmp_path / "three.wav", audio, SAMPLE_RATE)
    result = voxprompt("transcribe", tmp_path / "three.wav", "--output-dir", tmp_path, "--format", "json",
                       "--word-timestamps", "--quiet")
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "three.json").read_text())
    assert doc["run"]["word_timestamps"] is True
    words = [w for s in doc["segments"] for w in s["words"]]
    for s in doc["segments"]:
        assert "".join(w["word"] for w in s["words"]).strip() == s["text"]
        assert all(s["start"] <= w["start"] <= w["end"] <= s["end"] for w in s["words"])
    assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:]))
    for start, end, text in truth:  # each phrase: its first and last word where its sound starts and ends
        inside = [w for w in words if start - 0.3 <= w["start"] and w["end"] <= end + 0.3]
        assert inside, (text, words)
        assert abs(inside[0]["start"] - start) < 0.1 and abs(inside[-1]["end"] - end) < 0.1, (text, inside)

    srt = voxprompt("transcribe", tmp_path / "three.wav", "--output-dir", tmp_path, "--format", "srt",
                    "--word-timestamps", "--quiet")
    assert srt.returncode == 0, srt.stderr
    cues = srt_cues((tmp_path / "three.srt").read_text())
    assert cues[0][0] >= 0 and cues[-1][1] <= len(audio) / SAMPLE_RATE
    assert all(len(line) <= 42 and len(lines) <= 2 for *_, lines in cues for line in lines)
