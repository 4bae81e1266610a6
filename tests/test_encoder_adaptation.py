"""Training may adapt the encoder's last blocks: frames cached below them, the blocks run in the loop, and the
adapted weights, laid over the installed Whisper, give an encoder.onnx that computes what training computed."""
import numpy as np
import pytest
import torch

from voxprompt.encoder import SpeechEncoder as OrtEncoder
from voxprompt.export.default_model import adapted_whisper
from voxprompt.export.onnx_whisper import build_whisper_encoder_onnx
from voxprompt.manifest import EncoderSpec
from voxprompt.models.frontend import PAD_MULTIPLE, pad_waveform
from voxprompt.models.projector import ProjectorDims, ProjectorWeights
from voxprompt.models.speech_llm import Projector
from voxprompt.models.train import Bridge
from voxprompt.models.whisper import EncoderBelow, EncoderTop, WhisperEncoder
from voxprompt.models.whisper_dims import WhisperDims


@pytest.fixture()
def encoder(tiny_ct2) -> WhisperEncoder:
    return WhisperEncoder(tiny_ct2, WhisperDims.from_ct2(tiny_ct2)).eval()


def _pcm(seconds: float, seed: int) -> torch.Tensor:
    audio = (np.random.default_rng(seed).standard_normal(int(seconds * 16000)) * 0.05).astype(np.float32)
    return torch.from_numpy(pad_waveform(audio))[None]


@torch.no_grad()
def test_the_top_blocks_over_the_frames_below_them_are_the_whole_encoder(encoder):
    pcm = _pcm(2.3, 0)
    for n in (1, 2):
        assert torch.allclose(EncoderTop(encoder, n)(EncoderBelow(encoder, n)(pcm)), encoder(pcm), atol=1e-5)


@torch.no_grad()
def test_a_padded_batch_gives_each_clip_the_frames_it_gets_alone(encoder):
    below, top = EncoderBelow(encoder, 1), EncoderTop(encoder, 1)
    short, long = below(_pcm(0.9, 1))[0], below(_pcm(3.1, 2))[0]
    batch = torch.zeros(2, len(long), short.shape[1])
    batch[0, : len(short)], batch[1] = short, long
    together = top(batch, torch.tensor([len(short), len(long)]))
    assert torch.allclose(together[0, : len(short)], top(short[None])[0], atol=1e-5)
    assert torch.allclose(together[1], top(long[None])[0], atol=1e-5)


def test_adapted_weights_laid_over_whisper_give_an_onnx_encoder_that_matches_training(tmp_path, tiny_ct2, encoder):
    top = EncoderTop(encoder, 1)
    with torch.no_grad():  # as if trained: every adapted tensor moves (to a value float16 holds, as saved)
        for p in top.parameters():
            p.copy_((p + torch.randn_like(p) * 0.02).half().float())
    top.save(tmp_path / "encoder-tiny.en.npz")
    adapted, note = adapted_whisper(tiny_ct2, "tiny.en", tmp_path)
    assert "adapted" in note
    projector = ProjectorWeights.init(ProjectorDims(8, 384, 256, 576), seed=3)
    build_whisper_encoder_onnx(adapted, projector, tmp_path / "encoder.onnx")
    onnx = OrtEncoder(tmp_path / "encoder.onnx", EncoderSpec("encoder.onnx", "whisper-tiny.en", PAD_MULTIPLE, 6.25, 30.0))
    bridge = Bridge(Projector.from_weights(projector), top).eval()
    pcm = _pcm(1.7, 3)
    with torch.no_grad():
        trained = bridge(EncoderBelow(encoder, 1)(pcm))[0].numpy()
        frozen = Projector.from_weights(projector)(WhisperEncoder(tiny_ct2, WhisperDims.from_ct2(tiny_ct2))(pcm))[0]
    ours = onnx(pcm[0].numpy())
    assert np.abs(ours - trained).max() < 1e-4
    assert np.abs(ours - frozen.numpy()).max() > 1e-2  # the adaptation reached the graph


def test_weights_adapted_on_another_encoder_are_refused(tmp_path, tiny_ct2):
    np.savez(tmp_path / "encoder-tiny.en.npz", **{"encoder/layer_9/ffn/linear_0/weight": np.zeros((2, 2), np.float32)})
    with pytest.raises(ValueError, match="another encoder"):
        adapted_whisper(tiny_ct2, "tiny.en", tmp_path)
