"""Speech vectors go into llama.cpp as prompt embeddings exactly like the tokens they stand for."""
import gguf
import numpy as np
import pytest
from voxprompt.decoding import generate
from voxprompt.llm import SpeechPromptLLM
from voxprompt.manifest import DEFAULT_PROMPT, ModelError


@pytest.fixture(scope="module")
def llm(f16_model_dir):
    model = SpeechPromptLLM(f16_model_dir / "llm.gguf", DEFAULT_PROMPT)
    yield model
    model.close()


@pytest.fixture(scope="module")
def token_embeddings(f16_model_dir) -> np.ndarray:
    reader = gguf.GGUFReader(f16_model_dir / "llm.gguf")
    tensor = next(t for t in reader.tensors if t.name == "token_embd.weight")
    return np.asarray(tensor.data, dtype=np.float32).reshape(-1, 576)


def test_embedding_rows_give_bit_identical_logits(llm, token_embeddings):
    ids = llm.tokenize("Call me at 555-0199 tomorrow, Dr. Smith.")
    by_id = llm.prompt_logits(tokens=ids)
    by_vector = llm.prompt_logits(vectors=token_embeddings[ids])
    assert np.array_equal(by_id, by_vector)


def test_cached_prefix_gives_the_same_result_as_a_fresh_start(llm, token_embeddings):
    speech = token_embeddings[llm.tokenize("The meeting moved to Friday.")]
    llm.reset()
    fresh = [p.token for p in generate(llm, speech, 12)]
    other = token_embeddings[llm.tokenize("Something else entirely, with more words in it.")]
    list(generate(llm, other, 12))  # leaves its own state after the prefix
    cached = [p.token for p in generate(llm, speech, 12)]
    assert fresh == cached and len(fresh) > 0


def test_token_bound_is_respected(llm, token_embeddings):
    speech = token_embeddings[llm.tokenize("Count from one to one hundred.")]
    assert len(list(generate(llm, speech, 3))) <= 3


def test_streamed_pieces_spell_the_detokenised_text(llm, token_embeddings):
    speech = token_embeddings[llm.tokenize("Héllo, naïve café!")]
    pieces = list(generate(llm, speech, 20))
    assert "".join(p.text for p in pieces) == llm.detokenize([p.token for p in pieces])


def test_wrong_width_vectors_are_refused(llm):
    with pytest.raises(ModelError, match="576"):
        list(generate(llm, np.zeros((5, 384), np.float32), 4))


@pytest.mark.parametrize("model", ["f16_model_dir", "default_model_dir"])
def test_token_rows_are_read_from_the_gguf_as_its_reader_gives_them(model, request):
    from gguf.quants import dequantize
    from voxprompt.token_rows import TokenRows

    path = request.getfixturevalue(model) / "llm.gguf"
    tensor = next(t for t in gguf.GGUFReader(path).tensors if t.name == "token_embd.weight")
    ids = [0, 17, 4096, 49151]
    expected = dequantize(np.asarray(tensor.data[ids]), tensor.tensor_type).reshape(len(ids), -1)
    assert np.array_equal(TokenRows(path).rows(ids), expected)


def test_a_file_that_is_not_gguf_has_no_token_rows(tmp_path):
    from voxprompt.token_rows import TokenRows

    (tmp_path / "x.gguf").write_bytes(b"not a model" * 10)
    with pytest.raises(ValueError, match="not a GGUF"):
        TokenRows(tmp_path / "x.gguf")


def test_a_prompt_in_one_pass_decodes_as_in_two(default_model_dir):
    """The suffix and given tokens fed as their (quantised) embedding rows beside the speech vectors give
    the very logits of feeding them as tokens in a pass of their own."""
    from voxprompt.token_rows import TokenRows

    model = SpeechPromptLLM(default_model_dir / "llm.gguf", DEFAULT_PROMPT)
    try:
        assert model._rows_exact  # SmolLM2 reads its token rows unscaled: prompts take one pass
        speech = TokenRows(default_model_dir / "llm.gguf").rows(model.tokenize("Turn left at the station."))
        given = model.tokenize(" Turn left")
        results = []
        for one_pass in (True, False):
            model._rows_exact = one_pass
            logits, pos = model.prefill(0, speech, given)
            results.append((logits.copy(), pos))
            model.release(0)
        (one, pos_one), (two, pos_two) = results
        assert pos_one == pos_two and np.array_equal(one, two)
    finally:
        model.close()
