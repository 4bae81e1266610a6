"""Hugging Face speech encoders as frame producers: raw 16 kHz PCM [1, n] -> frames [1, t, d].

HuBERT, wav2vec2 and WavLM read the waveform (20 ms frames); Whisper reads our log-mel front end
(the same one the default model uses, 20 ms frames after its strided convolution) with the same
padding policy: no padding to 30 s, the position table is sliced to the input's length.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from voxprompt.manifest import ModelError

WAVEFORM_TYPES = ("hubert", "wav2vec2", "wavlm")
SUPPORTED_TYPES = WAVEFORM_TYPES + ("whisper",)


@dataclass(frozen=True)
class EncoderInfo:
    name: str
    width: int
    samples_per_frame: int
    conv_layers: tuple[tuple[int, int], ...]  # (kernel, stride) of unpadded convolutions on samples
    pad_multiple: int  # the padding policy in samples (1: none)
    max_seconds: float


class WaveformFrames(nn.Module):
    def __init__(self, model: nn.Module, normalize: bool):
        super().__init__()
        self.model, self.normalize = model, normalize

    def forward(self, pcm: torch.Tensor) -> torch.Tensor:
        if self.normalize:  # the feature extractor's do_normalize, inside the graph
            pcm = (pcm - pcm.mean(dim=-1, keepdim=True)) / torch.sqrt(pcm.var(dim=-1, keepdim=True) + 1e-7)
        return self.model(pcm).last_hidden_state


class WhisperFrames(nn.Module):
    """transformers' WhisperEncoder run on any length up to 30 s (its own forward insists on 30 s)."""

    def __init__(self, encoder: nn.Module, n_mels: int):
        super().__init__()
        from voxprompt.models.whisper import LogMel

        self.encoder, self.log_mel = encoder, LogMel(n_mels)

    def forward(self, pcm: torch.Tensor) -> torch.Tensor:
        e = self.encoder
        x = nn.functional.gelu(e.conv2(nn.functional.gelu(e.conv1(self.log_mel(pcm))))).transpose(1, 2)
        x = x + e.embed_positions.weight[: x.shape[1]]
        for layer in e.layers:
            out = layer(x, attention_mask=None)
            x = out[0] if isinstance(out, tuple) else out
        return e.layer_norm(x)


class StackedSpeechEncoder(nn.Module):
    """Frames -> whole stacks only -> projector: PCM [1, n] -> speech vectors [1, t // stack, d_llm]."""

    def __init__(self, frames: nn.Module, projector: nn.Module):
        super().__init__()
        self.frames, self.projector = frames, projector

    def forward(self, pcm: torch.Tensor) -> torch.Tensor:
        x = self.frames(pcm)
        stack = self.projector.dims.stack
        return self.projector(x[:, : x.shape[1] // stack * stack])


def load_hf_encoder(directory: str | Path) -> tuple[nn.Module, EncoderInfo]:
    """The frame producer and its facts, from a transformers model directory."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.exists():
        raise ModelError(f"{directory}: no config.json; point --encoder at a transformers model directory")
    model_type = json.loads(config_path.read_text()).get("model_type")
    if model_type not in SUPPORTED_TYPES:
        raise ModelError(f"{config_path}: encoder model_type {model_type!r} is not supported; "
                         f"use one of {', '.join(SUPPORTED_TYPES)}")
    from transformers import AutoModel

    model = AutoModel.from_pretrained(directory).eval()
    config = model.config
    if model_type == "whisper":
        from voxprompt.models.frontend import ENCODER_STRIDE, HOP_LENGTH, MAX_SAMPLES, PAD_MULTIPLE

        frames = WhisperFrames(model.get_encoder() if hasattr(model, "get_encoder") else model.encoder,
                               config.num_mel_bins)
        info = EncoderInfo(f"whisper ({directory.name})", config.d_model, HOP_LENGTH * ENCODER_STRIDE, (),
                           PAD_MULTIPLE, MAX_SAMPLES / 16000)
        return frames.eval(), info
    preprocessor = directory / "preprocessor_config.json"
    normalize = bool(json.loads(preprocessor.read_text()).get("do_normalize", False)) if preprocessor.exists() else False
    samples_per_frame = math.prod(config.conv_stride)
    info = EncoderInfo(f"{model_type} ({directory.name})", config.hidden_size, samples_per_frame,
                       tuple(zip(config.conv_kernel, config.conv_stride)), 1, 30.0)
    return WaveformFrames(model, normalize).eval(), info
