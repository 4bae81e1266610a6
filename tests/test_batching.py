"""Several segments decoded together: the same transcripts as one at a time, reported in file order."""
import numpy as np
import pytest
import soundfile as sf

from conftest import ASTERISK_SOUNDS, silence
from voxprompt.audio import SAMPLE_RATE, AudioError, load_audio
from voxprompt.decoding import Finished, Request, decode_many
from voxprompt.files import FileDone, FileStarted, Progress, SegmentDone, SegmentStarted, TokenText, transcribe_files
from voxprompt.llm import LlmOptions
from voxprompt.transcriber import Transcriber

PROMPTS = ["vm-intro", "vm-options", "vm-theperson", "vm-isunavail", "vm-goodbye", "vm-extension", "vm-password"]


@pytest.fixture(scope="module")
def three_seats(default_model_dir):
    t = Transcriber(default_model_dir, llm_options=LlmOptions(n_parallel=3))
    yield t
    t.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two recordings of several prompts each (pauses between them), a broken file between them."""
    d = tmp_path_factory.mktemp("files")
    clips = [load_audio(ASTERISK_SOUNDS / f"{name}.wav") for name in PROMPTS]
    pause = silence(1.5)
    sf.write(d / "first.wav", np.concatenate([x for c in clips[:4] for x in (c, pause)]), SAMPLE_RATE)
    (d / "broken.wav").write_text("not audio")
    sf.write(d / "second.wav", np.concatenate([x for c in clips[4:] for x in (pause, c)]), SAMPLE_RATE)
    return [d / "first.wav", d / "broken.wav", d / "second.wav"]


def test_segments_decoded_together_get_the_tokens_they_get_alone(three_seats, transcriber, files):
    together = [e.segment for e in transcribe_files(three_seats, files) if isinstance(e, SegmentDone)]
    assert len(together) >= len(PROMPTS)  # more segments than seats: seats are reused
    for path in (files[0], files[2]):
        for speech in transcriber.segments(iter([load_audio(path)])):
            alone = transcriber.transcribe_segment(speech)
            match = [s for s in together if s.start == alone.start and s.end == alone.end]
            assert len(match) == 1 and match[0].tokens == alone.tokens
    assert sum(len(s.tokens) for s in together) > 5 * len(together)


def test_events_come_in_file_order_each_segment_whole(three_seats, files):
    events = list(transcribe_files(three_seats, files))
    done = [e for e in events if isinstance(e, FileDone)]
    assert [e.path for e in done] == files
    assert done[0].error is None and done[2].error is None and isinstance(done[1].error, AudioError)
    assert [e.path for e in events if isinstance(e, FileStarted)] == [files[0], files[2]]  # no start for a bad file
    current, text, last_end = None, "", {}
    for e in events:
        if isinstance(e, SegmentStarted):
            assert current is None  # one segment at a time, not interleaved
            current, text = e, ""
        elif isinstance(e, TokenText):
            assert current is not None and e.path == current.path
            text += e.text
        elif isinstance(e, SegmentDone):
            assert current is not None and e.segment.start == current.speech.start_s
            assert " ".join(text.split()) == e.segment.text  # the streamed text is the transcript
            assert e.segment.start >= last_end.get(e.path, 0.0)  # in time order within the file
            last_end[e.path] = e.segment.end
            current = None
        elif isinstance(e, FileDone):
            assert current is None
    progress = [e.seconds for e in events if isinstance(e, Progress) and e.path == files[0]]
    assert progress == sorted(progress) and progress[-1] == pytest.approx(sf.info(files[0]).duration, abs=0.01)


def test_an_abandoned_run_leaves_no_sequence_behind(three_seats, recording_audio):
    llm = three_seats.llm
    speech = three_seats.encoder(recording_audio)
    requests = [Request(i, speech, 40) for i in range(3)]
    fresh = [e.tokens for _, e in decode_many(llm, requests) if isinstance(e, Finished)]
    run = decode_many(llm, requests)
    next(run)
    next(run)
    run.close()  # the consumer stops early (Ctrl-C, an error downstream)
    again = [e.tokens for _, e in decode_many(llm, requests) if isinstance(e, Finished)]
    assert again == fresh and len(fresh[0]) > 5 and fresh[0] == fresh[1] == fresh[2]


def test_speech_longer_than_the_context_is_refused_clearly(three_seats):
    too_long = np.zeros((three_seats.llm.capacity() + 1, three_seats.llm.width), np.float32)
    with pytest.raises(ValueError, match="split the audio"):
        list(decode_many(three_seats.llm, [Request(0, too_long, 10)]))


def test_evaluation_transcribes_clips_through_the_path_files_take(three_seats, files):
    """`python -m voxprompt.models.evaluate` scores what `voxprompt transcribe` would write: a clip in memory gives the same
    segments and tokens as the file it came from."""
    from voxprompt.files import AudioClip
    from voxprompt.models.dataset import Utterance
    from voxprompt.models.evaluate import transcribe_clips

    from_file = [e.segment for e in transcribe_files(three_seats, [files[2]]) if isinstance(e, SegmentDone)]
    clip = AudioClip("second", load_audio(files[2]))
    from_memory = [e.segment for e in transcribe_files(three_seats, [clip]) if isinstance(e, SegmentDone)]
    assert [(s.start, s.end, s.tokens) for s in from_memory] == [(s.start, s.end, s.tokens) for s in from_file]
    texts = transcribe_clips(three_seats, [Utterance(load_audio(path), "", "real:x") for path in (files[2], files[0])])
    assert texts[0] == " ".join(s.text for s in from_file if s.text)
    assert texts[1] and texts[1] != texts[0]


def test_each_seat_holds_the_longest_segment_in_the_256_cells_llama_cpp_gives_at_a_time(three_seats):
    """The KV cache is most of the memory: llama.cpp gives a seat cells in blocks of 256, and a default
    segment (its speech, its token bound, the prompt) must fit in one block, not spill into a second."""
    llm = three_seats.llm
    assert llm.n_ctx == 256
    longest = three_seats.cells_per_segment()  # speech vectors and token bound of the longest VAD segment
    assert llm.capacity() - len(llm.suffix_ids) >= longest


def test_an_unknown_k_cache_type_is_refused_before_loading():
    with pytest.raises(ValueError, match="k_cache"):
        LlmOptions(k_cache="q3_k")


def test_a_request_may_ask_for_a_narrower_beam(default_model_dir, three_seats, recording_audio):
    """Dictation's partials are greedy on the beam-4 model: the same tokens a greedy model gives."""
    greedy = Transcriber(default_model_dir, llm_options=LlmOptions(beam_size=1))
    try:
        segment = next(greedy.segments(iter([recording_audio])))
        expected = greedy.transcribe_segment(segment).tokens
    finally:
        greedy.close()
    narrow = three_seats.transcribe_segment(segment, beam=1).tokens
    assert narrow == expected and len(expected) > 5
