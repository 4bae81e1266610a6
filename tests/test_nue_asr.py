"""Bring your own checkpoint: the paper's Nue-ASR layout exported and run exactly like the reference."""
import shutil

import pytest
import torch
from conftest import run_voxprompt
from nue_asr_checkpoint import make_checkpoint
from voxprompt.decoding import generate
from voxprompt.export.nue_asr import export_nue_asr, special_token_ids
from voxprompt.llm import LlmOptions, RepetitionGuard, SpeechPromptLLM
from voxprompt.manifest import ModelError, load_manifest
from voxprompt.models.nue_asr import NueAsr
from voxprompt.transcriber import Transcriber

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("nue") / "nue-asr-tiny", seed=1)


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    return export_nue_asr(checkpoint, tmp_path_factory.mktemp("out") / "model", quant="f16", log=lambda m: None)


def test_manifest_carries_the_authors_prompt_and_token_bound(exported):
    m = load_manifest(exported)
    assert (m.prompt.prefix, m.prompt.suffix) == ("<s>", "[SEP]")
    assert m.token_bound(10.0) == 4 * 10 + 20
    assert m.encoder.vectors_per_second == pytest.approx(12.5)  # 20 ms HuBERT frames, 4x shorter


def test_special_tokens_keep_their_ids_in_llama_cpp(checkpoint, exported):
    ids = special_token_ids(checkpoint)
    m = load_manifest(exported)
    llm = SpeechPromptLLM(exported / m.llm.file, m.prompt)
    try:
        assert llm.prefix_ids == [ids["bos"]] == [2]
        assert llm.suffix_ids == [ids["sep"]]
        assert llm.is_stop(ids["eos"])
    finally:
        llm.close()


def test_app_and_transformers_generate_give_the_same_greedy_tokens(checkpoint, exported, recording_audio):
    reference = NueAsr.from_checkpoint(checkpoint)
    for p in reference.llm.parameters():  # the same f16 weights as llm.gguf, computed in float32
        p.data = p.data.half().float()
    ids = special_token_ids(checkpoint)
    runtime = Transcriber(exported, llm_options=LlmOptions(beam_size=1, k_cache="f16"))  # the reference:
    # greedy, float keys (the default q8_0 K cache is measured on the dev sets, not held to a reference)
    runtime.llm.guard = RepetitionGuard(max_period=0)  # the reference has no loop guard
    seen = set()
    try:
        for start, seconds in ((0.0, 4.0), (0.5, 2.0), (1.0, 3.1)):  # different speech, different prompts
            pcm = recording_audio[int(start * 16000): int((start + seconds) * 16000)]
            theirs = reference.transcribe_tokens(torch.from_numpy(pcm), ids["bos"], ids["sep"], ids["eos"])
            speech = runtime.encoder(pcm)
            with torch.no_grad():
                expected = reference.encoder(torch.from_numpy(pcm)[None])[0].numpy()
            assert abs(speech - expected).max() < 1e-4
            ours = [p.token for p in generate(runtime.llm, speech, runtime.manifest.token_bound(len(pcm) / 16000))]
            assert len(theirs) >= 8
            assert ours == theirs
            seen.update(theirs)
    finally:
        runtime.close()
    assert len(seen) >= 4  # the random model said more than one repeated token


def test_a_very_short_segment_is_padded_to_what_the_convolutions_need(exported):
    runtime = Transcriber(exported)
    try:
        assert runtime.encoder(torch.zeros(100).numpy()).shape[0] >= 1
    finally:
        runtime.close()


def test_unknown_layout_is_a_clear_error(checkpoint, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(checkpoint, other)
    (other / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ModelError, match="not the Nue-ASR layout"):
        export_nue_asr(other, tmp_path / "out", quant="f16", log=lambda m: None)
    assert not (tmp_path / "out").exists()


def test_missing_tokenizer_is_a_clear_error(checkpoint, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(checkpoint, other)
    (other / "spiece.model").unlink()
    with pytest.raises(ModelError, match="tokenizer"):
        export_nue_asr(other, tmp_path / "out", quant="f16", log=lambda m: None)


def test_bridge_width_that_does_not_match_the_llm_is_a_clear_error(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = make_checkpoint(tmp_path / "ckpt", llm_hidden=64)
    weights = load_file(folder / "model.safetensors")
    weights["bridge_proj.weight"] = torch.zeros(48, weights["bridge_proj.weight"].shape[1])
    weights["bridge_proj.bias"] = torch.zeros(48)
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(ModelError, match="bridge weights do not match"):
        export_nue_asr(folder, tmp_path / "out", quant="f16", log=lambda m: None)


def test_a_tokenizer_without_the_prompt_tokens_is_refused(checkpoint, tmp_path):
    import sentencepiece

    other = tmp_path / "other"
    shutil.copytree(checkpoint, other)
    import io

    from nue_asr_checkpoint import TEXT

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(TEXT.splitlines() * 20), model_writer=model,
                                             vocab_size=60, hard_vocab_limit=False, minloglevel=2)
    (other / "spiece.model").write_bytes(model.getvalue())
    with pytest.raises(ModelError, match=r"\[SEP\]"):
        export_nue_asr(other, tmp_path / "out", quant="f16", log=lambda m: None)




def test_command_line_exports_q8_0_and_transcribes_with_it(checkpoint, recording, tmp_path):
    done = run_voxprompt("export", "nue-asr", checkpoint, "--out", tmp_path / "model", "--quant", "q8_0")
    assert done.returncode == 0, done.stderr
    assert load_manifest(tmp_path / "model").llm.quantization == "q8_0"
    done = run_voxprompt("transcribe", recording, "--model", tmp_path / "model", "--output-dir", tmp_path, "--quiet")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / f"{recording.stem}.txt").exists()


def test_command_line_without_the_checkpoint_says_what_to_give(tmp_path):
    done = run_voxprompt("export", "nue-asr", "--out", tmp_path / "model")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "CHECKPOINT" in done.stderr.upper()
