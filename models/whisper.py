"""Whisper rebuilt in PyTorch from a CTranslate2 model.bin (the encoder is voxprompt's speech encoder).

The decoder is here only to prove the weight reader: with it, the rebuilt model must transcribe
exactly as faster-whisper does from the same file.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from voxprompt.models.ctranslate2 import CT2Model
from voxprompt.models.whisper_dims import WhisperDims
from voxprompt.models.frontend import ENCODER_STRIDE, HOP_LENGTH, MAX_SAMPLES, N_FFT, dft_basis, mel_filters


def _linear(m: CT2Model, prefix: str) -> nn.Linear:
    w = torch.from_numpy(np.array(m[f"{prefix}/weight"], dtype=np.float32))
    layer = nn.Linear(w.shape[1], w.shape[0])
    layer.weight.data.copy_(w)
    layer.bias.data.copy_(torch.from_numpy(np.array(m[f"{prefix}/bias"], dtype=np.float32)))
    return layer


def _layer_norm(m: CT2Model, prefix: str) -> nn.LayerNorm:
    gamma = torch.from_numpy(np.array(m[f"{prefix}/gamma"], dtype=np.float32))
    norm = nn.LayerNorm(gamma.shape[0])
    norm.weight.data.copy_(gamma)
    norm.bias.data.copy_(torch.from_numpy(np.array(m[f"{prefix}/beta"], dtype=np.float32)))
    return norm


class Attention(nn.Module):
    """Multi-head attention; `qkv` is CTranslate2's fused projection (self) or q + fused kv (cross)."""

    def __init__(self, m: CT2Model, prefix: str, n_head: int, cross: bool):
        super().__init__()
        self.n_head, self.cross = n_head, cross
        self.norm = _layer_norm(m, f"{prefix}/layer_norm")
        if cross:
            self.q, self.kv, self.out = (_linear(m, f"{prefix}/linear_{i}") for i in range(3))
        else:
            self.qkv, self.out = _linear(m, f"{prefix}/linear_0"), _linear(m, f"{prefix}/linear_1")

    def forward(self, x: Tensor, memory: Tensor | None = None, causal: bool = False,
                mask: Tensor | None = None) -> Tensor:
        h = self.norm(x)
        if self.cross:
            q, (k, v) = self.q(h), self.kv(memory).chunk(2, dim=-1)
        else:
            q, k, v = self.qkv(h).chunk(3, dim=-1)
        b, t, d = q.shape
        split = lambda z: z.view(b, z.shape[1], self.n_head, d // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask, is_causal=causal)
        return x + self.out(y.transpose(1, 2).reshape(b, t, d))


class FeedForward(nn.Module):
    def __init__(self, m: CT2Model, prefix: str):
        super().__init__()
        self.norm = _layer_norm(m, f"{prefix}/layer_norm")
        self.up, self.down = _linear(m, f"{prefix}/linear_0"), _linear(m, f"{prefix}/linear_1")

    def forward(self, x: Tensor) -> Tensor:
        return x + self.down(F.gelu(self.up(self.norm(x))))


class LogMel(nn.Module):
    """The log-mel front end as a strided convolution, batched; matches frontend.log_mel."""

    def __init__(self, n_mels: int):
        super().__init__()
        real, imag = dft_basis()
        self.register_buffer("basis", torch.from_numpy(np.concatenate([real, imag]))[:, None, :], persistent=False)
        self.register_buffer("filters", torch.from_numpy(mel_filters(n_mels)), persistent=False)

    def forward(self, pcm: Tensor) -> Tensor:
        """[b, samples] (samples a multiple of HOP_LENGTH) -> [b, n_mels, samples // HOP_LENGTH]."""
        x = F.pad(pcm[:, None, :], (N_FFT // 2, N_FFT // 2), mode="reflect")
        spec = F.conv1d(x, self.basis, stride=HOP_LENGTH)[..., : pcm.shape[-1] // HOP_LENGTH]
        real, imag = spec.chunk(2, dim=1)
        log_spec = torch.clamp(self.filters @ (real**2 + imag**2), min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (log_spec + 4.0) / 4.0


class WhisperEncoder(nn.Module):
    def __init__(self, m: CT2Model, dims: WhisperDims):
        super().__init__()
        self.dims = dims
        self.log_mel = LogMel(dims.n_mels)
        conv = lambda name, stride: self._conv(m, name, stride)
        self.conv1, self.conv2 = conv("encoder/conv1", 1), conv("encoder/conv2", 2)
        self.register_buffer("positions", torch.from_numpy(np.array(m["encoder/position_encodings/encodings"])))
        self.blocks = nn.ModuleList(
            nn.ModuleList([Attention(m, f"encoder/layer_{i}/self_attention", dims.n_audio_head, cross=False),
                           FeedForward(m, f"encoder/layer_{i}/ffn")])
            for i in range(dims.n_audio_layer)
        )
        self.ln_post = _layer_norm(m, "encoder/layer_norm")

    @staticmethod
    def _conv(m: CT2Model, name: str, stride: int) -> nn.Conv1d:
        w = torch.from_numpy(np.array(m[f"{name}/weight"], dtype=np.float32))
        conv = nn.Conv1d(w.shape[1], w.shape[0], w.shape[2], stride=stride, padding=1)
        conv.weight.data.copy_(w)
        conv.bias.data.copy_(torch.from_numpy(np.array(m[f"{name}/bias"], dtype=np.float32)))
        return conv

    def embed_mel(self, mel: Tensor) -> Tensor:
        """[b, n_mels, frames] -> [b, frames // 2, d]: the convolutions and positions, before any block."""
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
        return x + self.positions[: x.shape[1]]

    def forward_mel(self, mel: Tensor) -> Tensor:
        """[b, n_mels, frames] -> [b, frames // 2, d]; any length up to 30 s (the table is sliced)."""
        x = self.embed_mel(mel)
        for attn, ffn in self.blocks:
            x = ffn(attn(x))
        return self.ln_post(x)

    def forward(self, pcm: Tensor) -> Tensor:
        """[b, samples] 16 kHz PCM, padded by frontend.pad_waveform -> [b, samples // 320, d]."""
        return self.forward_mel(self.log_mel(pcm))


class InWindow(nn.Module):
    """An encoder run as Whisper was trained: the input zero-padded to the 30 s window, of whose frames
    only the input's own are returned (frames of short input encoded alone drift far: cosine ~0.7 at 0.5 s)."""

    def __init__(self, encoder: nn.Module, window_samples: int = MAX_SAMPLES):
        super().__init__()
        self.encoder, self.window_samples = encoder, window_samples

    def forward(self, pcm: Tensor) -> Tensor:
        """[b, samples] (padded by frontend.pad_waveform) -> [b, samples // 320, d]."""
        own_frames = pcm.shape[-1] // (HOP_LENGTH * ENCODER_STRIDE)
        return self.encoder(F.pad(pcm, (0, max(0, self.window_samples - pcm.shape[-1]))))[:, :own_frames]


class EncoderBelow(nn.Module):
    """PCM -> the frames that enter the encoder's last `n` blocks: what training caches when it adapts them."""

    def __init__(self, encoder: WhisperEncoder, n: int):
        super().__init__()
        self.encoder, self.n = encoder, n

    def forward(self, pcm: Tensor) -> Tensor:
        x = self.encoder.embed_mel(self.encoder.log_mel(pcm))
        for attn, ffn in list(self.encoder.blocks)[: len(self.encoder.blocks) - self.n]:
            x = ffn(attn(x))
        return x


class EncoderTop(nn.Module):
    """The encoder's last `n` blocks and final norm, trained with the bridge on frames cached below them."""

    def __init__(self, encoder: WhisperEncoder, n: int):
        super().__init__()
        self.first = len(encoder.blocks) - n
        self.blocks = nn.ModuleList(list(encoder.blocks)[self.first:])
        self.ln_post = encoder.ln_post

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """[b, t, d] frames; lengths: real frames per row, so that no frame attends to a batch's padding."""
        mask = None
        if lengths is not None:
            mask = (torch.arange(x.shape[1], device=x.device)[None] < lengths.to(x.device)[:, None])[:, None, None]
        for attn, ffn in self.blocks:
            x = ffn(attn(x, mask=mask))
        return self.ln_post(x)

    def ct2_variables(self) -> dict[str, np.ndarray]:
        """Its weights under CTranslate2's names: laid over the installed model, they give the adapted encoder."""
        out: dict[str, np.ndarray] = {}

        def put(prefix: str, module: nn.Module) -> None:
            names = ("gamma", "beta") if isinstance(module, nn.LayerNorm) else ("weight", "bias")
            for name, tensor in zip(names, (module.weight, module.bias)):
                out[f"{prefix}/{name}"] = tensor.detach().float().cpu().numpy()

        for i, (attn, ffn) in enumerate(self.blocks, start=self.first):
            prefix = f"encoder/layer_{i}"
            for name, module in (("self_attention/layer_norm", attn.norm), ("self_attention/linear_0", attn.qkv),
                                 ("self_attention/linear_1", attn.out), ("ffn/layer_norm", ffn.norm),
                                 ("ffn/linear_0", ffn.up), ("ffn/linear_1", ffn.down)):
                put(f"{prefix}/{name}", module)
        put("encoder/layer_norm", self.ln_post)
        return out

    def save(self, path) -> None:
        """ct2_variables() as an .npz of float16, the precision Whisper's own weights ship in."""
        np.savez(path, **{name: w.astype(np.float16) for name, w in self.ct2_variables().items()})


class WhisperDecoder(nn.Module):
    def __init__(self, m: CT2Model, dims: WhisperDims):
        super().__init__()
        self.embed = nn.Parameter(torch.from_numpy(np.array(m["decoder/embeddings/weight"])))
        self.register_buffer("positions", torch.from_numpy(np.array(m["decoder/position_encodings/encodings"])))
        self.blocks = nn.ModuleList(
            nn.ModuleList([Attention(m, f"decoder/layer_{i}/self_attention", dims.n_text_head, cross=False),
                           Attention(m, f"decoder/layer_{i}/attention", dims.n_text_head, cross=True),
                           FeedForward(m, f"decoder/layer_{i}/ffn")])
            for i in range(dims.n_text_layer)
        )
        self.ln = _layer_norm(m, "decoder/layer_norm")

    def forward(self, tokens: Tensor, audio: Tensor) -> Tensor:
        x = F.embedding(tokens, self.embed) + self.positions[: tokens.shape[1]]
        for self_attn, cross_attn, ffn in self.blocks:
            x = ffn(cross_attn(self_attn(x, causal=True), memory=audio))
        return self.ln(x) @ self.embed.T


class Whisper(nn.Module):
    def __init__(self, m: CT2Model):
        super().__init__()
        self.dims = WhisperDims.from_ct2(m)
        self.encoder = WhisperEncoder(m, self.dims)
        self.decoder = WhisperDecoder(m, self.dims)

    @torch.no_grad()
    def greedy_decode(self, mel: Tensor, prompt: list[int], eot: int, suppress: list[int],
                      max_tokens: int = 224) -> list[int]:
        """Greedy decoding as faster-whisper does it at temperature 0 (blank suppressed at the start)."""
        audio = self.encoder.forward_mel(mel)
        tokens = list(prompt)
        blank = 220  # " " in the GPT-2 vocabulary
        for step in range(max_tokens):
            logits = self.decoder(torch.tensor([tokens]), audio)[0, -1]
            logits[suppress] = -np.inf
            if step == 0:
                logits[[blank, eot]] = -np.inf
            nxt = int(logits.argmax())
            if nxt == eot:
                break
            tokens.append(nxt)
        return tokens[len(prompt):]


def load_whisper_encoder(name: str, device: str = "cpu") -> WhisperEncoder:
    """The installed Whisper checkpoint's encoder, in eval mode, on `device`."""
    from voxprompt.models.assets import whisper_asset
    from voxprompt.models.ctranslate2 import read_ct2_model

    ct2 = read_ct2_model(whisper_asset(name).model_bin)
    return WhisperEncoder(ct2, WhisperDims.from_ct2(ct2)).eval().to(device)
