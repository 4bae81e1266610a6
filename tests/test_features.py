"""Encoder frames cached ahead of training: processes that share a corpus encode every shard once between them."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from voxprompt.models.dataset import Utterance, _write_shard
from voxprompt.models.features import features_path, read_frames
from voxprompt.models.frontend import ENCODER_FRAMES_PER_SECOND, padded_length


def test_two_feature_processes_encode_each_audio_shard_once_at_the_padded_length(tmp_path):
    rng = np.random.default_rng(0)
    lengths = {"train-0000": [4000, 16000], "train-0001": [8000], "heldout-0000": [12345, 3000, 20000]}
    for stem, sizes in lengths.items():
        _write_shard(tmp_path / f"{stem}.npz",
                     [Utterance((0.1 * rng.standard_normal(n)).astype(np.float32), "a", "test") for n in sizes])
    for part in ("0/2", "1/2"):
        subprocess.run([sys.executable, "-m", "voxprompt.models.features", "--data", str(tmp_path), "--part", part],
                       check=True, capture_output=True, timeout=300)
    written = sorted(p.name for p in tmp_path.glob("*.frames.npz"))
    assert written == sorted(features_path(tmp_path / f"{stem}.npz", "tiny.en").name for stem in lengths)
    for stem, sizes in lengths.items():
        frames = read_frames(features_path(tmp_path / f"{stem}.npz", "tiny.en"))
        expected = [round(padded_length(n) / 16000 * ENCODER_FRAMES_PER_SECOND) for n in sizes]
        assert [len(f) for f in frames] == expected
        assert all(f.shape[1] == 384 and np.isfinite(f).all() for f in frames)


def test_frames_cached_in_the_window_are_what_the_windowed_encoder_onnx_projects(tmp_path, tiny_ct2, recording_audio):
    """Training's frames and inference's encoder.onnx must agree on the padding policy."""
    import torch

    from voxprompt.encoder import SpeechEncoder as OrtEncoder
    from voxprompt.export.onnx_whisper import build_whisper_encoder_onnx
    from voxprompt.manifest import EncoderSpec
    from voxprompt.models.features import cache_name, encode_shard
    from voxprompt.models.frontend import MAX_SAMPLES, PAD_MULTIPLE
    from voxprompt.models.projector import ProjectorDims, ProjectorWeights
    from voxprompt.models.speech_llm import Projector
    from voxprompt.models.whisper import WhisperEncoder
    from voxprompt.models.whisper_dims import WhisperDims

    clips = [recording_audio[:6000], recording_audio[:40000]]
    shard = tmp_path / "train-0000.npz"
    _write_shard(shard, [Utterance(c, "a", "test") for c in clips])
    encoder = WhisperEncoder(tiny_ct2, WhisperDims.from_ct2(tiny_ct2)).eval()
    windowed = read_frames(encode_shard(shard, encoder, "tiny.en", window=True))
    alone = read_frames(encode_shard(shard, encoder, "tiny.en"))
    assert features_path(shard, cache_name("tiny.en", True)).exists()

    weights = ProjectorWeights.init(ProjectorDims(8, 384, 256, 576), seed=5)
    build_whisper_encoder_onnx(tiny_ct2, weights, tmp_path / "encoder.onnx", window_samples=MAX_SAMPLES)
    onnx_encoder = OrtEncoder(tmp_path / "encoder.onnx", EncoderSpec("encoder.onnx", "w", PAD_MULTIPLE, 6.25, 30.0))
    projector = Projector.from_weights(weights).eval()
    for clip, frames, own in zip(clips, windowed, alone):
        assert frames.shape == own.shape
        with torch.no_grad():
            trained_on = projector(torch.from_numpy(frames.astype(np.float32))[None])[0].numpy()
        assert np.abs(trained_on - onnx_encoder(clip)).max() < 0.02  # float16 cache
        assert np.abs(frames.astype(np.float32) - own.astype(np.float32)).max() > 0.5
