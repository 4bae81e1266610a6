"""Augmentation makes new training conditions from old speech without changing what is said."""
import numpy as np
import pytest

from voxprompt.audio import SAMPLE_RATE
from voxprompt.models.augment import AugmentOptions, augment, change_speed


def _dominant_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)[spectrum.argmax()])


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_a_speed_change_scales_duration_and_pitch_together(factor):
    tone = np.sin(2 * np.pi * 200.0 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)
    faster = change_speed(tone, factor)
    assert len(faster) == pytest.approx(SAMPLE_RATE / factor, abs=2)
    assert _dominant_hz(faster) == pytest.approx(200.0 * factor, abs=2.0)


def test_without_speed_perturbation_the_random_stream_is_what_it_was():
    """Corpora built before speed perturbation existed stay reproducible: p_speed=0 draws nothing."""
    speech = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.1
    a = augment(speech, np.random.default_rng(5), AugmentOptions())
    b = augment(speech, np.random.default_rng(5), AugmentOptions(p_speed=0.0, speed=(0.5, 2.0)))
    np.testing.assert_array_equal(a, b)


def test_speed_perturbation_changes_the_length_within_its_range():
    speech = np.random.default_rng(1).standard_normal(2 * SAMPLE_RATE) * 0.1
    options = AugmentOptions(p_speed=1.0, speed=(0.9, 0.9), p_reverb=0, p_noise=0, p_telephone=0, pad_s=(0, 0))
    out = augment(speech, np.random.default_rng(2), options)
    assert len(out) == pytest.approx(2 * SAMPLE_RATE / 0.9, abs=2)
    assert np.all(np.isfinite(out))
