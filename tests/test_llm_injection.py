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
