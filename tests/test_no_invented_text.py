"""The default model says nothing on silence and noise, and never loops."""
import numpy as np
import pytest

from conftest import silence
from voxprompt.models.dataset import _NonSpeech

pytestmark = pytest.mark.slow


def non_speech_clips() -> list[np.ndarray]:
    """24 clips never trained on (another seed): coloured noise, mains hum, clicks, -45 to -12 dBFS; and silence."""
    clips = [u.audio for u in _NonSpeech(seed=20261127)(range(24), 0)]
    return clips + [silence(3.0), silence(0.5)]


def test_no_words_on_silence_or_noise(transcriber):
    heard, said = 0, {}
    for i, clip in enumerate(non_speech_clips()):
        # padded with silence as a recording would be, so the VAD sees an onset
        audio = np.concatenate([silence(0.5), clip, silence(1.0)])
        segments = list(transcriber.segments(iter([audio])))
        heard += bool(segments)
        text = " ".join(transcriber.transcribe_segment(s).text for s in segments).strip()
        if text:
            said[i] = text
    assert heard >= 8, "too few clips got past the VAD for this to test the model"
    assert said == {}
