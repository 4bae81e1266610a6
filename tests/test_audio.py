"""Any rate, any channel count, wav / flac / ogg in; clear one-line errors for what is not audio."""
import numpy as np
import pytest
import soundfile as sf

from voxprompt.audio import SAMPLE_RATE, AudioError, load_audio, probe, stream_audio


@pytest.mark.parametrize("fmt,rate,channels", [("wav", 44100, 2), ("flac", 48000, 1), ("ogg", 22050, 2),
                                               ("wav", 8000, 1), ("wav", 16000, 1)])
def test_resampled_to_16k_mono(tmp_path, fmt, rate, channels):
    t = np.arange(int(2.5 * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    data = np.stack([tone] * channels, axis=1) if channels > 1 else tone
    path = tmp_path / f"tone.{fmt}"
    sf.write(path, data, rate)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 2.5 * SAMPLE_RATE) <= 2
    # still a 440 Hz tone of the same level
    spectrum = np.abs(np.fft.rfft(audio[1000:-1000]))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(audio[1000:-1000]) - 440) < 2
    assert 0.45 < np.abs(audio).max() < 0.55


def test_streaming_reads_in_blocks(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(44100 * 25, np.float32), 44100)
    blocks = list(stream_audio(path, block_seconds=10.0))
    assert len(blocks) >= 3 and max(len(b) for b in blocks) <= 10 * SAMPLE_RATE + 100
    assert abs(sum(len(b) for b in blocks) - 25 * SAMPLE_RATE) <= 2


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        probe(tmp_path / "absent.wav")


@pytest.mark.parametrize("content", [b"", b"this is a text file, not audio\n" * 20, b"RIFF\x10\x00\x00\x00WAVEfmt "])
def test_not_audio_is_one_line(tmp_path, content):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError) as info:
        probe(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "wav, flac or ogg" in message


@pytest.mark.parametrize("rate", [16000, 44100])
def test_non_finite_samples_become_silence_and_do_not_spread(tmp_path, rate):
    """60 ms of NaN in a float wav once emptied an 11 s transcript: the resampler and encoder smear it."""
    t = np.arange(4 * rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    tone[rate: rate + int(0.06 * rate)] = np.nan
    tone[2 * rate] = np.inf
    path = tmp_path / "holes.wav"
    sf.write(path, tone, rate, subtype="FLOAT")
    audio = load_audio(path)
    assert np.isfinite(audio).all()
    # away from the holes the tone is intact
    assert 0.45 < np.abs(audio[3 * SAMPLE_RATE:]).max() < 0.55
    assert 0.45 < np.abs(audio[: SAMPLE_RATE - 200]).max() < 0.55
