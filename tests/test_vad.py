"""VAD segmentation: speech found with its onset kept, silence dropped, long speech split, times exact."""
import numpy as np

from conftest import silence
from voxprompt.audio import SAMPLE_RATE
from voxprompt.vad import VadOptions, VadSegmenter


def run(audio, options=VadOptions(), block=4000):
    vad = VadSegmenter(options)
    segments = []
    for i in range(0, len(audio), block):
        segments += vad.push(audio[i:i + block])
    return segments + vad.flush()


def test_silence_gives_no_segments():
    assert run(silence(10.0)) == []


def test_low_noise_gives_no_segments():
    noise = (np.random.default_rng(1).standard_normal(10 * SAMPLE_RATE) * 1e-3).astype(np.float32)
    assert run(noise) == []


def test_two_utterances_with_original_times(recording_audio):
    speech_s = len(recording_audio) / SAMPLE_RATE
    audio = np.concatenate([silence(2.0), recording_audio, silence(2.0), recording_audio, silence(1.0)])
    segments = run(audio)
    assert len(segments) == 2
    second_onset = 2.0 + speech_s + 2.0
    for seg, onset in zip(segments, (2.0, second_onset)):
        # the pre-roll reaches back before the first voiced frame, never more than 0.3 s plus a frame
        assert onset - 0.35 <= seg.start_s <= onset + 0.3
        assert seg.end_s <= onset + speech_s + 0.3
        start = seg.start
        assert np.array_equal(seg.audio, audio[start:start + len(seg.audio)])


def test_block_size_does_not_change_segments(recording_audio):
    audio = np.concatenate([silence(1.0), recording_audio, silence(1.5), recording_audio])
    a, b = run(audio, block=160), run(audio, block=48000)
    assert [(s.start, s.end) for s in a] == [(s.start, s.end) for s in b]


def test_long_speech_is_split_at_a_quiet_point(recording_audio):
    # 40 s of speech with only short pauses: no silence long enough for the hang-over to end it.
    gap = silence(0.2)
    audio = np.concatenate([np.concatenate([recording_audio, gap])] * int(40 / (len(recording_audio) / SAMPLE_RATE)))
    options = VadOptions(max_segment_s=12.0, split_window_s=4.0)
    segments = run(audio, options)
    assert len(segments) >= 3
    assert all(s.duration <= 12.0 + 1e-6 for s in segments)
    # consecutive pieces of a split touch: nothing is lost between them
    for a, b in zip(segments, segments[1:]):
        if b.start - a.end < SAMPLE_RATE * 0.5:
            assert b.start == a.end


def test_a_click_is_not_speech():
    click = np.zeros(SAMPLE_RATE, np.float32)
    click[8000:8040] = 0.9
    assert run(np.concatenate([silence(1.0), click, silence(1.0)]), VadOptions(aggressiveness=3)) == []


def test_closing_candidate_is_exactly_the_segment_that_closes(recording_audio):
    """Dictation decodes the candidate early; it must be the very audio the VAD then commits."""
    options = VadOptions(hangover_ms=300, tail_ms=150)
    vad = VadSegmenter(options)
    audio = np.concatenate([silence(1.0), recording_audio, silence(1.0)])
    candidates, closed, voiced_candidate = [], [], False
    for i in range(0, len(audio), 480):  # 30 ms blocks, as a microphone delivers them
        closed += vad.push(audio[i:i + 480])
        candidate = vad.closing_candidate()
        if candidate is not None:
            candidates.append(candidate)
            voiced_candidate |= vad.trailing_silence_ms < options.tail_ms
    assert len(closed) >= 1 and candidates
    assert not voiced_candidate  # offered only once the kept tail is there
    last = candidates[-1]
    assert (last.start, len(last.audio)) == (closed[-1].start, len(closed[-1].audio))
    assert np.array_equal(last.audio, closed[-1].audio)


def test_an_early_candidate_stands_for_the_segment_with_zeros_for_the_tail_to_come(recording_audio):
    """With candidate_after_ms, dictation starts its final at the first silent frame: the candidate ends
    where the closing segment will (framed), its unheard tail as zeros, and stays the same while the tail
    arrives, so a decode started early is not thrown away."""
    options = VadOptions(hangover_ms=300, tail_ms=150, candidate_after_ms=30)
    vad = VadSegmenter(options)
    audio = np.concatenate([silence(1.0), recording_audio, silence(1.0)])
    offered, closed = [], []
    for i in range(0, len(audio), 480):
        closed += vad.push(audio[i:i + 480])
        candidate = vad.closing_candidate()
        if candidate is not None:
            assert vad.candidate_end == candidate.framed_end
            offered.append((vad.trailing_silence_ms, candidate))
    assert closed and offered
    final = closed[-1]
    for_final = [(ms, c) for ms, c in offered if c.start == final.start and c.framed_end == final.framed_end]
    silences = [ms for ms, _ in for_final]
    assert min(silences) == 30 < options.tail_ms <= max(silences)  # offered early, and the same to the end
    earliest = for_final[0][1]
    assert earliest.pad_after > 0 and len(earliest.framed()) == len(final.framed())
    heard = len(earliest.audio)
    assert np.array_equal(earliest.audio, final.audio[:heard]) and not earliest.framed()[heard:].any()


def test_speech_at_the_stream_edges_is_framed_by_silence(recording_audio):
    """The model is trained on speech with quiet around it: a file whose speech starts at its first sample
    (or a dictation that starts mid-word) must reach the encoder framed as if silence came before and after."""
    loud = lambda x: np.nonzero(np.abs(x) > 0.02)[0]  # noqa: E731
    speech = recording_audio[loud(recording_audio)[0]: loud(recording_audio)[-1] + 1]
    [edge] = run(speech)
    [inner] = run(np.concatenate([silence(2.0), speech, silence(2.0)]))
    assert edge.start == 0 and edge.pad_before > 0 and edge.pad_after > 0
    assert inner.pad_before == inner.pad_after == 0  # the stream gave the whole pre-roll and tail
    assert np.array_equal(edge.framed()[edge.pad_before: len(edge.framed()) - edge.pad_after], speech[:len(edge.audio)])
    lead = lambda x: loud(x)[0]  # noqa: E731
    trail = lambda x: len(x) - 1 - loud(x)[-1]  # noqa: E731
    # within 150 ms: webrtcvad calls a few frames after a word's end voiced, and frames start where they fall
    assert abs(lead(edge.framed()) - lead(inner.framed())) <= 0.15 * SAMPLE_RATE
    assert abs(trail(edge.framed()) - trail(inner.framed())) <= 0.15 * SAMPLE_RATE
