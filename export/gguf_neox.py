"""A transformers GPT-NeoX LM with a SentencePiece vocabulary -> GGUF (f16), then checked in llama.cpp.

llama.cpp's own converter assumes GPT-2 BPE for every GPT-NeoX model; rinna's models (and so Nue-ASR) use
SentencePiece, so the vocabulary is written here as llama.cpp's SentencePiece ("llama") tokenizer, with
every piece, score and type, and the special ids (`<s>`, `</s>`, `[SEP]`...) exactly as the tokenizer has them.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from voxprompt.manifest import ModelError

_SKIP = ("attention.bias", "attention.masked_bias", "rotary_emb.inv_freq")


def _qkv_to_gguf(t: np.ndarray, n_head: int) -> np.ndarray:
    """HF interleaves q, k, v per head ([head, 3, head_dim, ...]); llama.cpp reads [3, head, head_dim, ...]."""
    rest = t.shape[1:]
    return t.reshape(n_head, 3, -1, *rest).swapaxes(0, 1).reshape(t.shape)


def _rope(config) -> tuple[float, float]:
    """(rotary fraction of each head, base): transformers 5 keeps them in rope_parameters, older in rotary_*."""
    rope = getattr(config, "rope_parameters", None) or {}
    fraction = rope.get("partial_rotary_factor", getattr(config, "rotary_pct", 1.0))
    theta = rope.get("rope_theta", getattr(config, "rotary_emb_base", 10000.0))
    return float(fraction), float(theta)


def _piece_types(sp) -> list[int]:
    import gguf

    kinds = []
    for i in range(sp.get_piece_size()):
        if sp.is_unknown(i):
            kinds.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            kinds.append(gguf.TokenType.CONTROL)
        elif sp.is_unused(i):
            kinds.append(gguf.TokenType.UNUSED)
        elif sp.is_byte(i):
            kinds.append(gguf.TokenType.BYTE)
        elif sp.id_to_piece(i).startswith("[") and sp.id_to_piece(i).endswith("]"):
            kinds.append(gguf.TokenType.CONTROL)  # [SEP], [CLS]...: user-defined in rinna's model, special in use
        else:
            kinds.append(gguf.TokenType.NORMAL)
    return kinds


def write_gptneox_gguf(llm, spm_path: Path, special_ids: dict[str, int], out: Path, name: str) -> None:
    """Write `llm` (GPTNeoXForCausalLM) and the SentencePiece vocabulary at `spm_path` to `out` as f16 GGUF."""
    import gguf
    import sentencepiece

    config = llm.config
    sp = sentencepiece.SentencePieceProcessor(model_file=str(spm_path))
    n_vocab = llm.get_input_embeddings().weight.shape[0]
    if sp.get_piece_size() > n_vocab:
        raise ModelError(f"{spm_path}: {sp.get_piece_size()} pieces but the LLM embeds only {n_vocab} tokens; "
                         "the tokenizer belongs to another model")
    head_dim = config.hidden_size // config.num_attention_heads
    writer = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.GPTNEOX])
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    rotary_fraction, rope_theta = _rope(config)
    writer.add_rope_dimension_count(int(rotary_fraction * head_dim))
    writer.add_rope_freq_base(rope_theta)
    writer.add_head_count(config.num_attention_heads)
    writer.add_parallel_residual(bool(config.use_parallel_residual))
    writer.add_layer_norm_eps(config.layer_norm_eps)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    # Vocabulary: pieces padded up to the embedding rows (extra rows are never produced by the tokenizer).
    pieces = [sp.id_to_piece(i).encode("utf-8") for i in range(sp.get_piece_size())]
    scores = [sp.get_score(i) for i in range(sp.get_piece_size())]
    types = _piece_types(sp)
    for i in range(len(pieces), n_vocab):
        pieces.append(f"[PAD{i}]".encode())
        scores.append(-1000.0)
        types.append(gguf.TokenType.UNUSED)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(pieces)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    for role, token_id in special_ids.items():
        getattr(writer, f"add_{role}_token_id")(token_id)
    writer.add_add_bos_token(False)  # the speech prompt places <s> itself
    writer.add_add_eos_token(False)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GPTNEOX, config.num_hidden_layers)
    for hf_name, tensor in llm.state_dict().items():
        if hf_name.endswith(_SKIP):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ModelError(f"GPT-NeoX tensor {hf_name} has no GGUF name; this layout is not supported")
        data = tensor.detach().float().numpy()
        if "query_key_value" in hf_name:
            data = _qkv_to_gguf(data, config.num_attention_heads)
        # Matrices in f16 (the f16 model); norms and biases stay f32, as llama.cpp expects.
        writer.add_tensor(gguf_name, data.astype(np.float16) if data.ndim == 2 else data.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    check_vocabulary(out, spm_path, special_ids)


def check_vocabulary(gguf_path: Path, spm_path: Path, special_ids: dict[str, int]) -> None:
    """The vocabulary survived: llama.cpp finds each special token at its id, and decodes text as SentencePiece."""
    import sentencepiece

    from voxprompt.llm import llama_library

    llama_cpp = llama_library()

    from voxprompt.llm import silence_llama_logs

    silence_llama_logs()
    sp = sentencepiece.SentencePieceProcessor(model_file=str(spm_path))
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(gguf_path).encode(), params)
    if not model:
        raise ModelError(f"{gguf_path}: llama.cpp cannot read the GGUF just written")
    try:
        vocab = llama_cpp.llama_model_get_vocab(model)
        for role, token_id in special_ids.items():
            text = sp.id_to_piece(token_id).encode()
            ids = (llama_cpp.llama_token * 8)()
            n = llama_cpp.llama_tokenize(vocab, text, len(text), ids, 8, False, True)
            if list(ids[:n]) != [token_id]:
                raise ModelError(f"the vocabulary would not survive GGUF conversion: {role} token {text.decode()!r} "
                                 f"is id {token_id} in {spm_path.name} but llama.cpp reads it as {list(ids[:max(n, 0)])}")
        # Every ordinary piece (up to 2000 of them) must decode to the same text as in SentencePiece.
        import gguf

        sample = [i for i, kind in enumerate(_piece_types(sp)) if kind == gguf.TokenType.NORMAL][:2000]
        expected = sp.decode(sample)
        buf = ctypes.create_string_buffer(256)
        got = b""
        for token in sample:
            n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, False)
            got += buf.raw[:n]
        if got.decode("utf-8", errors="replace").strip() != expected.strip():
            raise ModelError(f"the vocabulary would not survive GGUF conversion: llama.cpp decodes {got!r} "
                             f"where SentencePiece decodes {expected!r}")
    finally:
        llama_cpp.llama_model_free(model)
