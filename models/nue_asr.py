"""The paper authors' released layout (Nue-ASR): HuBERT -> bridge -> GPT-NeoX, read from a checkpoint directory.

    config.json        model_type "nue_asr", audio_encoder_config (HubertConfig), llm_config (GPTNeoXConfig),
                       bridge_conv_kernel_size, bridge_conv_stride
    *.safetensors | *.bin   audio_encoder.* (HubertModel), bridge_convs.{0,1}.* (Conv1d, each then GELU),
                       bridge_proj.* (Linear encoder width -> LLM width), llm.* (GPTNeoXForCausalLM)
    spiece.model       the SentencePiece vocabulary (a T5Tokenizer-class tokenizer)

The prompt is the embedding of `<s>`, the speech vectors, the embedding of `[SEP]`; decoding is greedy with at
most 4 tokens per second of audio + 20. This module is the PyTorch reference the export is checked against.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from voxprompt.manifest import ModelError, TokenBound

MODEL_TYPE = "nue_asr"
TOKENIZER_FILE = "spiece.model"
TOKEN_BOUND = TokenBound(per_second=4.0, extra=20)  # the authors' max_new_tokens
MAX_SECONDS = 16.0  # the authors warn that longer segments degrade


@dataclass(frozen=True)
class NueAsrLayout:
    audio_encoder: dict  # HubertConfig fields
    llm: dict  # GPTNeoXConfig fields
    kernel_sizes: tuple[int, ...]
    strides: tuple[int, ...]
    normalize_waveform: bool  # zero mean, unit variance per segment (preprocessor_config.json do_normalize)

    @classmethod
    def read(cls, checkpoint: Path) -> "NueAsrLayout":
        config_path = checkpoint / "config.json"
        if not config_path.exists():
            raise ModelError(f"{checkpoint}: no config.json; point at the Nue-ASR checkpoint directory")
        config = json.loads(config_path.read_text())
        if config.get("model_type") != MODEL_TYPE or "audio_encoder_config" not in config or "llm_config" not in config:
            raise ModelError(f"{config_path}: model_type {config.get('model_type')!r} is not the Nue-ASR layout "
                             f"({MODEL_TYPE!r} with audio_encoder_config and llm_config); "
                             "for other checkpoints use `voxprompt export hf`")
        if not (checkpoint / TOKENIZER_FILE).exists():
            raise ModelError(f"{checkpoint}: the tokenizer ({TOKENIZER_FILE}) is missing; copy it from the "
                             "checkpoint's release next to config.json")
        preprocessor = checkpoint / "preprocessor_config.json"
        normalize = bool(json.loads(preprocessor.read_text()).get("do_normalize", False)) if preprocessor.exists() else False
        return cls.read_config(config, normalize)

    @classmethod
    def read_config(cls, config: dict, normalize_waveform: bool = False) -> "NueAsrLayout":
        kernels = tuple(config.get("bridge_conv_kernel_size", (4, 4)))
        strides = tuple(config.get("bridge_conv_stride", (2, 2)))
        if len(kernels) != len(strides):
            raise ModelError(f"config.json: {len(kernels)} bridge kernel sizes but {len(strides)} strides")
        return cls(config["audio_encoder_config"], config["llm_config"], kernels, strides, normalize_waveform)


class Bridge(nn.Module):
    """Strided Conv1d + GELU layers (shorten the frame sequence), then a Linear into the LLM width."""

    def __init__(self, d_encoder: int, d_llm: int, kernels: tuple[int, ...], strides: tuple[int, ...]):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(d_encoder, d_encoder, k, s) for k, s in zip(kernels, strides))
        self.proj = nn.Linear(d_encoder, d_llm)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # [b, t, d_encoder] -> [b, t', d_llm]
        x = frames.transpose(1, 2)
        for conv in self.convs:
            x = nn.functional.gelu(conv(x))
        return self.proj(x.transpose(1, 2))


class NueAsrEncoder(nn.Module):
    """Raw 16 kHz waveform [1, n] -> speech vectors [1, t, d_llm]: what encoder.onnx computes."""

    def __init__(self, hubert: nn.Module, bridge: Bridge, normalize_waveform: bool):
        super().__init__()
        self.hubert, self.bridge, self.normalize_waveform = hubert, bridge, normalize_waveform

    def forward(self, pcm: torch.Tensor) -> torch.Tensor:
        if self.normalize_waveform:
            pcm = (pcm - pcm.mean(dim=-1, keepdim=True)) / torch.sqrt(pcm.var(dim=-1, keepdim=True) + 1e-7)
        return self.bridge(self.hubert(pcm).last_hidden_state)


def _read_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    files = sorted(checkpoint.glob("*.safetensors"))
    if files:
        from safetensors.torch import load_file

        weights = {}
        for f in files:
            weights.update(load_file(f))
        return weights
    files = sorted(checkpoint.glob("pytorch_model*.bin"))
    if not files:
        raise ModelError(f"{checkpoint}: no weights (*.safetensors or pytorch_model*.bin)")
    weights = {}
    for f in files:
        weights.update(torch.load(f, map_location="cpu", weights_only=True))
    return weights


def _load_part(module: nn.Module, weights: dict[str, torch.Tensor], prefix: str, checkpoint: Path) -> None:
    part = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    missing, unexpected = module.load_state_dict(part, strict=False)
    missing = [k for k in missing if not k.endswith(("masked_spec_embed", "rotary_emb.inv_freq"))]
    if missing or unexpected:
        raise ModelError(f"{checkpoint}: the {prefix.rstrip('.')} weights do not fit its config "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]}); is the checkpoint complete?")


class NueAsr(nn.Module):
    """The composed model, as the authors run it: speech prompt + transformers `generate`."""

    def __init__(self, layout: NueAsrLayout):
        super().__init__()
        from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, HubertConfig, HubertModel

        hubert_config, llm_config = HubertConfig(**layout.audio_encoder), GPTNeoXConfig(**layout.llm)
        self.layout = layout
        self.audio_encoder = HubertModel(hubert_config)
        self.bridge = Bridge(hubert_config.hidden_size, llm_config.hidden_size, layout.kernel_sizes, layout.strides)
        self.llm = GPTNeoXForCausalLM(llm_config)
        self.encoder = NueAsrEncoder(self.audio_encoder, self.bridge, layout.normalize_waveform)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path) -> "NueAsr":
        checkpoint = Path(checkpoint)
        model = cls(NueAsrLayout.read(checkpoint))
        weights = _read_weights(checkpoint)
        _load_part(model.audio_encoder, weights, "audio_encoder.", checkpoint)
        _load_part(model.llm, weights, "llm.", checkpoint)
        bridge = {k.replace("bridge_convs.", "convs.").replace("bridge_proj.", "proj."): v
                  for k, v in weights.items() if k.startswith(("bridge_convs.", "bridge_proj."))}
        try:
            model.bridge.load_state_dict(bridge)
        except RuntimeError as exc:
            raise ModelError(f"{checkpoint}: the bridge weights do not match the encoder and LLM widths "
                             f"({str(exc).splitlines()[-1].strip()})") from None
        return model.eval()

    def state_dict_in_layout(self) -> dict[str, torch.Tensor]:
        """Weights named as the released checkpoint names them (for writing test checkpoints)."""
        out = {f"audio_encoder.{k}": v for k, v in self.audio_encoder.state_dict().items()}
        out.update({f"llm.{k}": v for k, v in self.llm.state_dict().items()})
        out.update({"bridge_" + k: v for k, v in self.bridge.state_dict().items()})
        return out

    @torch.no_grad()
    def transcribe_tokens(self, pcm: torch.Tensor, bos_id: int, sep_id: int, eos_id: int) -> list[int]:
        """Greedy tokens for one segment [n] as the authors decode: generate() from inputs_embeds."""
        speech = self.encoder(pcm[None].float())
        embed = self.llm.get_input_embeddings()
        inputs = torch.cat([embed(torch.tensor([[bos_id]])), speech, embed(torch.tensor([[sep_id]]))], dim=1)
        max_new = TOKEN_BOUND(len(pcm) / 16000)
        out = self.llm.generate(inputs_embeds=inputs, attention_mask=torch.ones(inputs.shape[:2], dtype=torch.long),
                                max_new_tokens=max_new, do_sample=False, num_beams=1,
                                eos_token_id=eos_id, pad_token_id=eos_id)
        tokens = out[0].tolist()
        return tokens[:tokens.index(eos_id)] if eos_id in tokens else tokens
