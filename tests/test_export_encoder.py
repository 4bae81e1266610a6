"""encoder.onnx (written without torch) computes what the PyTorch encoder + projector compute."""
import numpy as np
import pytest
import torch

from voxprompt.encoder import SpeechEncoder as OrtEncoder
from voxprompt.export.onnx_whisper import build_whisper_encoder_onnx
from voxprompt.manifest import EncoderSpec
from voxprompt.models.frontend import MAX_SAMPLES, PAD_MULTIPLE
from voxprompt.models.projector import ProjectorDims, ProjectorWeights
from voxprompt.models.speech_llm import Projector, SpeechEncoder
from voxprompt.models.whisper import InWindow, WhisperEncoder
from voxprompt.models.whisper_dims import WhisperDims

SPEC = EncoderSpec("encoder.onnx", "whisper-tiny.en", PAD_MULTIPLE, 12.5, 30.0)


@pytest.fixture(scope="module", params=[4, 8], ids=["stack4", "stack8"])
def projector(request):
    """4 frames per vector fill an 80 ms pad unit; 8 need the last vector's missing frames padded in-graph."""
    return ProjectorWeights.init(ProjectorDims(request.param, 384, 256, 576), seed=3)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_ct2, projector):
    path = tmp_path_factory.mktemp("enc") / "encoder.onnx"
    build_whisper_encoder_onnx(tiny_ct2, projector, path)
    return OrtEncoder(path, SPEC)


@pytest.fixture(scope="module")
def reference(tiny_ct2, projector):
    encoder = WhisperEncoder(tiny_ct2, WhisperDims.from_ct2(tiny_ct2))
    return SpeechEncoder(encoder, Projector.from_weights(projector)).eval()


def test_onnx_matches_pytorch_on_a_real_recording(exported, reference, recording_audio):
    ours = exported(recording_audio)
    with torch.no_grad():
        theirs = reference(torch.from_numpy(exported.pad(recording_audio))[None])[0].numpy()
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < 1e-4


@pytest.mark.parametrize("seconds", [0.05, 1.0, 7.3, 29.9])
def test_any_length_up_to_30_s_gives_50_over_stack_vectors_per_second(exported, reference, projector, seconds):
    pcm = (np.random.default_rng(0).standard_normal(int(seconds * 16000)) * 0.05).astype(np.float32)
    ours = exported(pcm)
    assert ours.shape == (int(np.ceil(seconds * 50 / projector.dims.stack)), 576)
    with torch.no_grad():
        theirs = reference(torch.from_numpy(exported.pad(pcm))[None])[0].numpy()
    assert np.abs(ours - theirs).max() < 1e-4


@pytest.fixture(scope="module")
def exported_in_window(tmp_path_factory, tiny_ct2, projector):
    path = tmp_path_factory.mktemp("enc") / "encoder.onnx"
    build_whisper_encoder_onnx(tiny_ct2, projector, path, window_samples=MAX_SAMPLES)
    return OrtEncoder(path, SPEC)


@pytest.mark.parametrize("seconds", [0.4, 2.0, None], ids=["0.4s", "2s", "whole"])
def test_in_the_window_onnx_matches_pytorch_encoding_inside_whisper_s_30_s(
        exported_in_window, exported, tiny_ct2, projector, recording_audio, seconds):
    pcm = recording_audio if seconds is None else recording_audio[: int(seconds * 16000)]
    reference = SpeechEncoder(InWindow(WhisperEncoder(tiny_ct2, WhisperDims.from_ct2(tiny_ct2))),
                              Projector.from_weights(projector)).eval()
    ours = exported_in_window(pcm)
    with torch.no_grad():
        theirs = reference(torch.from_numpy(exported_in_window.pad(pcm))[None])[0].numpy()
    assert ours.shape == theirs.shape == exported(pcm).shape  # the window adds context, not vectors
    assert np.abs(ours - theirs).max() < 1e-4
    if seconds == 0.4:  # a short clip encoded alone is far from the same clip in the window
        assert np.abs(ours - exported(pcm)).max() > 0.1


def test_longer_than_the_encoder_window_is_refused(exported):
    with pytest.raises(ValueError, match="longer than"):
        exported(np.zeros(31 * 16000, np.float32))


def test_projector_width_must_match_the_encoder(tmp_path, tiny_ct2):
    wrong = ProjectorWeights.init(ProjectorDims(4, 512, 64, 576))
    with pytest.raises(ValueError, match="384"):
        build_whisper_encoder_onnx(tiny_ct2, wrong, tmp_path / "x.onnx")


def test_runs_on_cpu_here(exported):
    assert exported.device == "cpu"


@pytest.mark.slow
def test_whisper_base_is_a_supported_encoder(tmp_path, recording_audio):
    from voxprompt.models.assets import whisper_asset
    from voxprompt.models.ctranslate2 import read_ct2_model

    base = read_ct2_model(whisper_asset("base", cache_dir=tmp_path).model_bin)
    dims = WhisperDims.from_ct2(base)
    assert (dims.n_audio_state, dims.n_audio_layer, dims.n_vocab) == (512, 6, 51865)
    projector = ProjectorWeights.init(ProjectorDims(4, 512, 128, 576), seed=1)
    build_whisper_encoder_onnx(base, projector, tmp_path / "encoder.onnx")
    session = OrtEncoder(tmp_path / "encoder.onnx", SPEC)
    ours = session(recording_audio)
    reference = SpeechEncoder(WhisperEncoder(base, dims), Projector.from_weights(projector)).eval()
    with torch.no_grad():
        theirs = reference(torch.from_numpy(session.pad(recording_audio))[None])
    assert np.abs(ours - theirs[0].numpy()).max() < 1e-4


def test_int8_weights_keep_the_vectors_and_quarter_the_file(tiny_ct2, projector, exported, recording_audio, tmp_path):
    """The default model's encoder runs with int8 MatMul weights: the vectors stay those of float32."""
    import onnx

    from voxprompt.export.onnx_whisper import quantize_matmul_weights

    path = tmp_path / "encoder.onnx"
    build_whisper_encoder_onnx(tiny_ct2, projector, path)
    size = path.stat().st_size
    quantize_matmul_weights(path)
    assert path.stat().st_size < 0.45 * size
    assert any(t.data_type == onnx.TensorProto.INT8 for t in onnx.load(str(path)).graph.initializer)
    ours, full = OrtEncoder(path, SPEC)(recording_audio), exported(recording_audio)
    cosine = (ours * full).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(full, axis=1)
    assert ours.shape == full.shape and cosine.mean() > 0.97 and cosine.min() > 0.9
