"""The generic route: a transformers speech encoder + a voxprompt projector + a transformers causal LM."""
import json

import numpy as np
import pytest
import torch
from nue_asr_checkpoint import train_sentencepiece
from voxprompt.decoding import generate
from voxprompt.export.hf import export_hf
from voxprompt.llm import LlmOptions, RepetitionGuard
from voxprompt.manifest import ModelError, load_manifest
from voxprompt.models.projector import ProjectorDims, ProjectorWeights
from voxprompt.transcriber import Transcriber

pytestmark = pytest.mark.slow
D_LLM = 64


def tiny_llama(folder, byte_fallback: bool = True):
    """A tiny Llama with a SentencePiece tokenizer trained here."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir()
    # byte fallback, as Llama's own vocabulary has: the prompt's characters all have a token
    train_sentencepiece(folder / "tokenizer.model", vocab_size=350 if byte_fallback else 96, byte_fallback=byte_fallback)
    llm = LlamaForCausalLM(LlamaConfig(vocab_size=384, hidden_size=D_LLM, num_hidden_layers=2, num_attention_heads=4,
                                       num_key_value_heads=2, intermediate_size=128, max_position_embeddings=512,
                                       initializer_range=0.2, tie_word_embeddings=False, bos_token_id=2,
                                       eos_token_id=3))
    llm.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A tiny wav2vec2 encoder, a random projector and a tiny Llama with a SentencePiece tokenizer."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    encoder = Wav2Vec2Model(Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                           intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                                           num_conv_pos_embedding_groups=4))
    encoder.save_pretrained(root / "encoder")
    ProjectorWeights.init(ProjectorDims(4, 32, 48, D_LLM), seed=0).save(root / "projector.npz")
    tiny_llama(root / "llm")
    return root


@pytest.fixture(scope="module")
def exported(parts, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m"
    return export_hf(parts / "encoder", parts / "projector.npz", parts / "llm", out, quant="f16", log=lambda m: None)


def test_app_and_pytorch_reference_give_the_same_greedy_tokens(parts, exported, recording_audio):
    from transformers import AutoModelForCausalLM
    from voxprompt.models.hf_encoder import StackedSpeechEncoder, load_hf_encoder
    from voxprompt.models.speech_llm import Projector, PromptIds, SpeechLLM

    frames, _ = load_hf_encoder(parts / "encoder")
    speech_encoder = StackedSpeechEncoder(frames, Projector.from_weights(ProjectorWeights.load(parts / "projector.npz")))
    llm = AutoModelForCausalLM.from_pretrained(parts / "llm").eval()
    for p in llm.parameters():  # the same f16 weights as llm.gguf, computed in float32
        p.data = p.data.half().float()
    runtime = Transcriber(exported, llm_options=LlmOptions(beam_size=1, k_cache="f16"))  # the reference:
    # greedy, float keys (the default q8_0 K cache is measured on the dev sets, not held to a reference)
    runtime.llm.guard = RepetitionGuard(max_period=0)
    try:
        rt = runtime.llm
        reference = SpeechLLM(speech_encoder.eval(), llm, PromptIds(rt.prefix_ids, rt.suffix_ids, [3]))
        seen = set()
        for start, seconds in ((0.0, 3.0), (0.7, 2.2)):
            pcm = recording_audio[int(start * 16000): int((start + seconds) * 16000)]
            bound = runtime.manifest.token_bound(seconds)
            speech = runtime.encoder(pcm)
            with torch.no_grad():
                expected = speech_encoder(torch.from_numpy(pcm)[None])[0].numpy()
            assert np.abs(speech - expected).max() < 1e-4
            ours = [p.token for p in generate(rt, speech, bound)]
            theirs = reference.greedy_decode(torch.from_numpy(pcm), bound)
            assert len(theirs) >= 8
            assert ours == theirs
            seen.update(theirs)
        assert len(seen) >= 4
    finally:
        runtime.close()


def test_manifest_describes_the_parts(exported):
    m = load_manifest(exported)
    assert m.encoder.vectors_per_second == pytest.approx(12.5)
    assert m.llm.width == D_LLM


def test_projector_for_another_llm_width_is_refused(parts, tmp_path):
    ProjectorWeights.init(ProjectorDims(4, 32, 48, D_LLM + 8), seed=0).save(tmp_path / "p.npz")
    with pytest.raises(ModelError, match="reads 64"):
        export_hf(parts / "encoder", tmp_path / "p.npz", parts / "llm", tmp_path / "out", log=lambda m: None)
    assert not (tmp_path / "out").exists()


def test_projector_for_another_encoder_is_refused(parts, tmp_path):
    ProjectorWeights.init(ProjectorDims(4, 48, 48, D_LLM), seed=0).save(tmp_path / "p.npz")
    with pytest.raises(ModelError, match="48-wide frames"):
        export_hf(parts / "encoder", tmp_path / "p.npz", parts / "llm", tmp_path / "out", log=lambda m: None)


def test_unknown_encoder_type_is_refused(parts, tmp_path):
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelError, match="not supported"):
        export_hf(tmp_path / "enc", parts / "projector.npz", parts / "llm", tmp_path / "out", log=lambda m: None)


def test_llm_without_tokenizer_is_refused(parts, tmp_path):
    import shutil

    shutil.copytree(parts / "llm", tmp_path / "llm")
    (tmp_path / "llm" / "tokenizer.model").unlink()
    with pytest.raises(ModelError, match="no tokenizer"):
        export_hf(parts / "encoder", parts / "projector.npz", tmp_path / "llm", tmp_path / "out", log=lambda m: None)


def test_whisper_encoders_run_unpadded_and_match_transformers_at_30_seconds(tmp_path):
    from transformers import WhisperConfig, WhisperModel
    from voxprompt.models.hf_encoder import load_hf_encoder

    torch.manual_seed(0)
    config = WhisperConfig(d_model=32, encoder_layers=2, encoder_attention_heads=2, decoder_layers=1,
                           decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80)
    WhisperModel(config).save_pretrained(tmp_path / "whisper")
    frames, info = load_hf_encoder(tmp_path / "whisper")
    assert info.pad_multiple == 1280  # the default model's padding policy, not 30 s
    pcm = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 16000 * 30)).astype(np.float32) * 0.1)
    with torch.no_grad():
        ours = frames(pcm)
        theirs = frames.encoder(frames.log_mel(pcm)).last_hidden_state
        short = frames(pcm[:, :1280 * 10])
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert short.shape == (1, 40, 32)


def test_a_vocabulary_that_cannot_spell_the_prompt_is_a_clear_error(parts, tmp_path):
    llm = tiny_llama(tmp_path / "llm", byte_fallback=False)
    with pytest.raises(ModelError, match="cannot tokenize the prompt"):
        export_hf(parts / "encoder", parts / "projector.npz", llm, tmp_path / "out", log=lambda m: None)
