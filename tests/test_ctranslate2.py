"""The CTranslate2 reader recovers Whisper's weights (the proof is test_whisper_reference)."""
import numpy as np
import pytest

from voxprompt.models.ctranslate2 import read_ct2_model
from voxprompt.models.whisper_dims import WhisperDims


def test_reads_whisper_tiny_en_dimensions(tiny_ct2):
    dims = WhisperDims.from_ct2(tiny_ct2)
    assert (dims.n_mels, dims.n_audio_state, dims.n_audio_layer, dims.n_audio_head) == (80, 384, 4, 6)
    assert dims.n_audio_ctx == 1500 and dims.n_vocab == 51864
    assert tiny_ct2.spec == "WhisperSpec"


def test_aliases_share_their_target(tiny_ct2):
    assert tiny_ct2["decoder/projection/weight"] is tiny_ct2["decoder/embeddings/weight"]


def test_weights_are_float32_and_finite(tiny_ct2):
    w = tiny_ct2["encoder/conv1/weight"]
    assert w.dtype == np.float32 and w.shape == (384, 80, 3)
    assert np.isfinite(w).all() and w.std() > 0


def test_truncated_file_is_a_clear_error(tmp_path, tiny_ct2):
    from voxprompt.models.assets import whisper_asset

    data = whisper_asset("tiny.en").model_bin.read_bytes()[:100_000]
    cut = tmp_path / "model.bin"
    cut.write_bytes(data)
    with pytest.raises(ValueError, match="truncated"):
        read_ct2_model(cut)


def test_encoder_only_copy_round_trips(tmp_path, tiny_ct2):
    from voxprompt.models.ctranslate2 import write_ct2_model

    write_ct2_model(tmp_path / "model.bin", tiny_ct2, keep=lambda n: n.startswith("encoder/"))
    copy = read_ct2_model(tmp_path / "model.bin")
    assert set(copy.variables) == {n for n in tiny_ct2.variables if n.startswith("encoder/")}
    # float16 is how the package stores them: the round trip is exact
    np.testing.assert_array_equal(copy["encoder/conv1/weight"], tiny_ct2["encoder/conv1/weight"])
    assert WhisperDims.from_ct2(copy).n_audio_state == 384
