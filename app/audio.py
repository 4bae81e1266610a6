"""Audio in: files of any rate and channel count, streamed from disk as 16 kHz mono float32."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

SAMPLE_RATE = 16_000  # what every voxprompt model reads
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3")  # what `--recursive` picks up (libsndfile reads them)


class AudioError(Exception):
    """An input file that cannot be read as audio; the message is one line saying what to do."""


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _open(path: Path):
    import soundfile as sf

    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, give audio files")
    try:
        return sf.SoundFile(os.fsencode(path))  # bytes: a name that is not UTF-8 opens too
    except Exception as exc:  # libsndfile says "Format not recognised" and the like
        reason = str(exc).split(":")[-1].strip() or type(exc).__name__
        raise AudioError(f"{path}: not a readable audio file ({reason}); use wav, flac or ogg") from None


def probe(path: str | Path) -> AudioInfo:
    path = Path(path)
    with _open(path) as f:
        return AudioInfo(path, f.samplerate, f.channels, f.frames)


def to_mono_16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Down-mix [frames, channels] (or [frames]) and resample a whole buffer to SAMPLE_RATE."""
    audio = finite(np.asarray(audio, dtype=np.float32))
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if sample_rate != SAMPLE_RATE:
        import soxr

        audio = soxr.resample(audio, sample_rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(audio, dtype=np.float32)


def finite(block: np.ndarray) -> np.ndarray:
    """The block with NaN and infinite samples set to 0: one NaN in a resampler's or the encoder's input
    spreads to everything after it (60 ms of NaN in a float wav emptied an 11 s transcript)."""
    if np.isfinite(block).all():
        return block
    return np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)


class Resampler:
    """Streaming down-mix + resample to 16 kHz mono, for files and microphones alike; never passes on
    a non-finite sample."""

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate
        if sample_rate != SAMPLE_RATE:
            import soxr

            self._stream = soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        else:
            self._stream = None

    def __call__(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        block = finite(np.asarray(block, dtype=np.float32))
        if block.ndim == 2:
            block = block.mean(axis=1)
        if self._stream is None:
            return block
        return self._stream.resample_chunk(block, last=last)


def stream_audio(path: str | Path, block_seconds: float = 30.0) -> Iterator[np.ndarray]:
    """Yield a file as 16 kHz mono float32 blocks, reading only one block at a time from disk."""
    path = Path(path)
    with _open(path) as f:
        resample = Resampler(f.samplerate)
        block_frames = max(1, int(block_seconds * f.samplerate))
        while True:
            # Not SoundFile.blocks(): it sizes blocks by the header's frame count, which for MP3 is an
            # estimate above what decodes, and yields the unwritten rest of its buffer (garbage, at times NaN).
            try:
                block = f.read(block_frames, dtype="float32", always_2d=True)
            except RuntimeError as exc:
                raise AudioError(f"{path}: audio data is corrupt ({exc}); re-encode the file") from None
            if not len(block):
                break
            out = resample(block)
            if len(out):
                yield out
        tail = resample(np.zeros((0, f.channels), np.float32), last=True)
        if len(tail):
            yield tail


def load_audio(path: str | Path) -> np.ndarray:
    """A whole file as one 16 kHz mono array (for short files; long ones should be streamed)."""
    blocks = list(stream_audio(path))
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
