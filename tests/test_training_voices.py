"""The voices that make training speech: held-out voices stay out of training, every engine speaks
words a speech recogniser can read, and the corpus is the same for the same seed."""
from __future__ import annotations

import numpy as np
import pytest

from voxprompt.models.dataset import Utterance
from voxprompt.models.evaluate import wer, whisper_clips
from voxprompt.models.tts import HELD_OUT, NATURAL_VOICES, TRAIN_VOICES, Voice, synthesize

SENTENCE = "Please call the office before ten in the morning."


def test_no_held_out_voice_or_espeak_accent_is_trained_on():
    trained = set(TRAIN_VOICES) | set(NATURAL_VOICES)
    assert not trained & set(HELD_OUT)
    accent = lambda v: v.name.split("+")[0]
    trained_accents = {accent(v) for v in trained if v.engine == "espeak"}
    assert not trained_accents & {accent(v) for v in HELD_OUT if v.engine == "espeak"}


@pytest.mark.parametrize("voice", [TRAIN_VOICES[0], *NATURAL_VOICES], ids=lambda v: v.id)
def test_every_training_engine_says_the_text(voice: Voice):
    speech = synthesize(voice, SENTENCE)
    assert speech.dtype == np.float32 and 1.5 < len(speech) / 16000 < 8
    (heard,) = whisper_clips([Utterance(speech, SENTENCE, voice.id)])
    assert wer([SENTENCE], [heard]) <= 0.35, heard


def test_piper_speech_is_the_same_for_the_same_seed():
    from voxprompt.models import tts

    joe = Voice("piper", "joe")
    first = [synthesize(joe, text, seed=3) for text in ("Press one.", SENTENCE)]
    tts._piper_voice.cache_clear()  # as in another worker process
    again = [synthesize(joe, text, seed=3) for text in ("Press one.", SENTENCE)]
    other = synthesize(joe, "Press one.", seed=4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert len(other) != len(first[0]) or np.abs(other - first[0]).max() > 1e-3


def test_eval_reports_each_voice_group_on_its_own_clips():
    from voxprompt.models.evaluate import wer_by_voice

    sources = ["espeak:en-029+f5", "real:vm-intro", "espeak:en-029+m8", "flite:rms", "real:conf-locked"]
    refs = ["press one now", "leave a message", "call me back", "the pound key", "the conference is locked"]
    hyps = ["press one now", "leave message", "fall we back", "the pound key", "the conference is locked"]
    by_voice = wer_by_voice(sources, refs, hyps)
    assert by_voice == {"espeak:en-029": (2, 2 / 6), "flite:rms": (1, 0.0), "real": (2, 1 / 7)}


def test_short_training_texts_are_lone_words_and_fragments_but_never_a_held_out_prompt():
    from voxprompt.models.corpus import short_texts

    held_out = {"Sunday", "eleventh", "b", "Transfer.", "echo"}
    texts = short_texts(2000, seed=1, exclude=held_out)
    assert texts == short_texts(2000, seed=1, exclude=held_out)  # the same corpus for the same seed
    lengths = [len(t.split()) for t in texts]
    assert max(lengths) <= 3 and lengths.count(1) > len(texts) / 3
    plain = {t.lower().strip(".") for t in texts}
    assert not plain & {"sunday", "eleventh", "b", "transfer", "echo"}
    assert {"monday", "twelfth", "c", "bravo"} <= plain  # their neighbours are trained on
    assert any(t[0].isupper() for t in texts) and any(t.endswith(".") for t in texts)


def test_eval_reports_lone_words_phrases_and_sentences_apart():
    from voxprompt.models.evaluate import wer_by_length

    refs = ["Eight.", "<beep>", "Thank you.", "Press 1 to mute or unmute yourself.", "tilde"]
    hyps = ["h", "", "Thank you!", "Press one to mute or unmute yourself", "tilde"]
    # normalised: "one" == "1", punctuation and case dropped; "<beep>" has no words to score
    assert wer_by_length(refs, hyps) == {"1 word": (2, 0.5), "2-4 words": (1, 0.0), "5+ words": (1, 0.0)}


def test_the_wer_interval_holds_the_wer_and_narrows_with_more_clips():
    from voxprompt.models.evaluate import wer_interval

    refs = ["press one now", "leave a message", "call me back", "the pound key", "the conference is locked"] * 4
    hyps = ["press one now", "leave message", "fall we back", "the pound key", "the conference is locked"] * 4
    low, high = wer_interval(refs, hyps)
    assert low < wer(refs, hyps) < high
    wide_low, wide_high = wer_interval(refs[:5], hyps[:5])
    assert wide_high - wide_low > high - low
    assert wer_interval(refs, refs) == (0.0, 0.0)


def test_two_models_on_the_same_clips_are_compared_clip_by_clip():
    from voxprompt.models.evaluate import wer_difference_interval, wer_interval

    # a hard voice (half the clips) both models get half wrong; the better one is better on the easy clips
    refs = ["press one now for sales", "leave a message after the tone"] * 15
    worse = ["press won now four sails", "leave a massage after the tone"] * 15
    better = ["press won now four sails", "leave a message after the tone"] * 15
    hard = [i % 2 == 0 for i in range(30)]
    noisy_worse = [("x y z w v" if h and i % 4 == 0 else w) for i, (h, w) in enumerate(zip(hard, worse))]
    noisy_better = [("x y z w v" if h and i % 4 == 0 else b) for i, (h, b) in enumerate(zip(hard, better))]
    diff, low, high = wer_difference_interval(refs, noisy_better, noisy_worse)
    assert diff == pytest.approx(wer(refs, noisy_better) - wer(refs, noisy_worse))
    assert low <= diff <= high < 0  # told apart: every resample has the better model ahead
    apart = wer_interval(refs, noisy_better)[1] - wer_interval(refs, noisy_worse)[0]
    assert high - low < apart  # tighter than the two separate intervals
    assert wer_difference_interval(refs, worse, worse) == (0.0, 0.0, 0.0)


def test_non_speech_is_also_trained_as_the_short_pieces_the_vad_lets_through():
    from voxprompt.models.dataset import _NonSpeech, _NonSpeechPieces

    whole = [u.audio for u in _NonSpeech(seed=1)(range(40), 0)]
    pieces = list(_NonSpeechPieces(seed=1)(range(40), 0))
    assert len(pieces) >= 10 and all(p.text == "" for p in pieces)
    # what the runtime hands the model: bursts of a clip with the VAD's pre-roll and tail, not the clip
    lengths = [len(p.audio) for p in pieces]
    assert np.median(lengths) < np.median([len(w) for w in whole])
    assert min(lengths) < 1.0 * 16000 and max(lengths) <= max(len(w) for w in whole) + 2.5 * 16000
    again = list(_NonSpeechPieces(seed=1)(range(40), 0))  # a shard made again is the same shard
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(pieces, again)) and len(again) == len(pieces)
