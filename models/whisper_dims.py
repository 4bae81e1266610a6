"""Whisper's dimensions, read off a CTranslate2 model (numpy only, so the ONNX builder needs no torch)."""
from __future__ import annotations

from dataclasses import dataclass

from voxprompt.models.ctranslate2 import CT2Model


@dataclass(frozen=True)
class WhisperDims:
    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int

    @classmethod
    def from_ct2(cls, m: CT2Model) -> "WhisperDims":
        def n_layers(prefix: str) -> int:
            return sum(1 for k in m.variables if k.startswith(prefix) and k.endswith("ffn/linear_0/weight"))

        return cls(
            n_mels=m["encoder/conv1/weight"].shape[1],
            n_audio_ctx=m["encoder/position_encodings/encodings"].shape[0],
            n_audio_state=m["encoder/conv1/weight"].shape[0],
            n_audio_head=m.scalar("encoder/num_heads"),
            n_audio_layer=n_layers("encoder/"),
            # an encoder-only file (see write_ct2_model) has no decoder: its dimensions read as 0
            n_vocab=m["decoder/embeddings/weight"].shape[0] if "decoder/embeddings/weight" in m.variables else 0,
            n_text_ctx=m["decoder/position_encodings/encodings"].shape[0] if n_layers("decoder/") else 0,
            n_text_state=m["decoder/embeddings/weight"].shape[1] if n_layers("decoder/") else 0,
            n_text_head=m.scalar("decoder/num_heads") if n_layers("decoder/") else 0,
            n_text_layer=n_layers("decoder/"),
        )
