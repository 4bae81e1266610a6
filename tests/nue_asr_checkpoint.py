"""Tiny random checkpoints in exactly the Nue-ASR layout (HuBERT + bridge + GPT-NeoX + SentencePiece)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import torch

TEXT = """the quick brown fox jumps over the lazy dog
please leave a message after the tone
your call is important to us, please hold
press one for sales, two for support and three for billing
the meeting starts at nine thirty tomorrow morning
thank you for calling, goodbye"""


def train_sentencepiece(path: Path, vocab_size: int = 96, byte_fallback: bool = False) -> None:
    """A unigram SentencePiece model with rinna's special pieces: [PAD] 0, <unk> 1, <s> 2, </s> 3, [SEP], [CLS]."""
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXT.splitlines() * 20), model_writer=model, vocab_size=vocab_size,
        model_type="unigram", pad_id=0, unk_id=1, bos_id=2, eos_id=3, pad_piece="[PAD]",
        user_defined_symbols=["[SEP]", "[CLS]"], hard_vocab_limit=False, byte_fallback=byte_fallback,
        minloglevel=2)
    path.write_bytes(model.getvalue())


def make_checkpoint(folder: Path, seed: int = 0, llm_hidden: int = 64, vocab_rows: int = 128,
                    tokenizer: bool = True) -> Path:
    """config.json, model.safetensors and spiece.model for a tiny random Nue-ASR model."""
    from safetensors.torch import save_file
    from transformers import GPTNeoXConfig, HubertConfig

    from voxprompt.models.nue_asr import NueAsr, NueAsrLayout

    folder.mkdir(parents=True, exist_ok=True)
    hubert = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
    # rinna's GPT-NeoX: full rotary, sequential residual, untied output; wide init: clear greedy choices
    neox = GPTNeoXConfig(vocab_size=vocab_rows, hidden_size=llm_hidden, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=4 * llm_hidden, rotary_pct=1.0, use_parallel_residual=False,
                         max_position_embeddings=512, initializer_range=0.2, tie_word_embeddings=False,
                         bos_token_id=2, eos_token_id=3)
    config = {"model_type": "nue_asr", "audio_encoder_config": hubert.to_diff_dict(),
              "llm_config": neox.to_diff_dict(), "bridge_conv_kernel_size": [4, 4], "bridge_conv_stride": [2, 2]}
    for part in ("audio_encoder_config", "llm_config"):
        config[part].pop("transformers_version", None)
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    torch.manual_seed(seed)
    model = NueAsr(NueAsrLayout.read_config(config))
    save_file({k: v.contiguous() for k, v in model.state_dict_in_layout().items()}, str(folder / "model.safetensors"))
    if tokenizer:
        train_sentencepiece(folder / "spiece.model")
    return folder
