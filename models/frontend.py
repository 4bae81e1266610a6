"""Whisper's log-mel front end, as numpy constants and a numpy reference.

The exported encoder graph computes the same features from raw PCM (export/onnx_whisper.py), so
every voxprompt model takes 16 kHz float32 PCM. Padding policy, used in training and inference alike:
the waveform is zero-padded at the end to a whole number of `PAD_MULTIPLE` samples and never to 30 s
(30 s padding costs 10x the compute for a 3 s segment, and the projector is trained on this policy);
a projector stacking more frames than a pad unit holds zero-pads the frames to a whole vector.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from voxprompt.audio import SAMPLE_RATE

N_FFT = 400
HOP_LENGTH = 160  # 10 ms: 100 mel frames per second
ENCODER_STRIDE = 2  # Whisper's second conv halves the frame rate to 50 per second
ENCODER_FRAMES_PER_SECOND = SAMPLE_RATE / (HOP_LENGTH * ENCODER_STRIDE)  # 50: a projector stacks some of them
MAX_ENCODER_FRAMES = 1500  # the positional table: 30 s
FRAMES_PER_PAD_UNIT = 4  # the audio is padded to whole groups of 4 encoder frames
PAD_MULTIPLE = HOP_LENGTH * ENCODER_STRIDE * FRAMES_PER_PAD_UNIT  # 1280 samples = 80 ms
STACK = 4  # an untrained projector's frames per speech vector (12.5 per second); a trained one has its own
MAX_SAMPLES = MAX_ENCODER_FRAMES * ENCODER_STRIDE * HOP_LENGTH  # 480000 = 30 s


def padded_length(n_samples: int) -> int:
    """Length after the padding policy: the next multiple of PAD_MULTIPLE, at least one."""
    return max(PAD_MULTIPLE, -(-n_samples // PAD_MULTIPLE) * PAD_MULTIPLE)


def pad_waveform(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    return np.pad(audio, (0, padded_length(len(audio)) - len(audio)))


@lru_cache(maxsize=4)
def mel_filters(n_mels: int = 80) -> np.ndarray:
    """Slaney-style mel filterbank [n_mels, N_FFT//2+1], identical to librosa.filters.mel's default."""
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)

    def mel_to_hz(m):
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    mel_freqs = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2), n_mels + 2))
    fdiff = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_freqs[2:] - mel_freqs[:-2]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=1)
def dft_basis() -> tuple[np.ndarray, np.ndarray]:
    """Windowed real and imaginary DFT rows [N_FFT//2+1, N_FFT]: the STFT as one strided convolution."""
    n = np.arange(N_FFT)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)  # periodic Hann, as torch.hann_window
    k = np.arange(N_FFT // 2 + 1)[:, None]
    angle = 2 * np.pi * k * n[None, :] / N_FFT
    return (window * np.cos(angle)).astype(np.float32), (-window * np.sin(angle)).astype(np.float32)


def log_mel(audio: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """Whisper log-mel [n_mels, len(audio) // HOP_LENGTH] of an (already padded) waveform."""
    audio = np.asarray(audio, dtype=np.float32)
    padded = np.pad(audio, (N_FFT // 2, N_FFT // 2), mode="reflect")
    n_frames = len(audio) // HOP_LENGTH
    idx = np.arange(N_FFT)[None, :] + HOP_LENGTH * np.arange(n_frames)[:, None]
    real, imag = dft_basis()
    frames = padded[idx]
    power = (frames @ real.T) ** 2 + (frames @ imag.T) ** 2
    mel = mel_filters(n_mels) @ power.T
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)
