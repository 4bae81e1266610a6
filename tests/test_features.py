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
