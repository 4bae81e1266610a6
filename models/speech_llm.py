"""The composed speech-LLM in PyTorch: speech encoder + projector + causal LM, and its greedy reference.

Prompt layout (the runtime uses the same, from the manifest): prefix tokens, speech vectors,
suffix tokens, then the transcript and the end token.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from voxprompt.models.projector import ProjectorDims, ProjectorWeights


class Projector(nn.Module):
    """Trainable twin of ProjectorWeights: stack frames -> LayerNorm -> Linear -> GELU -> Linear."""

    def __init__(self, dims: ProjectorDims):
        super().__init__()
        self.dims = dims
        self.norm = nn.LayerNorm(dims.d_in)
        self.fc1 = nn.Linear(dims.d_in, dims.d_hidden)
        self.fc2 = nn.Linear(dims.d_hidden, dims.d_llm)

    @classmethod
    def from_weights(cls, w: ProjectorWeights) -> "Projector":
        p = cls(w.dims)
        for param, array in ((p.norm.weight, w.norm_weight), (p.norm.bias, w.norm_bias),
                             (p.fc1.weight, w.fc1_weight), (p.fc1.bias, w.fc1_bias),
                             (p.fc2.weight, w.fc2_weight), (p.fc2.bias, w.fc2_bias)):
            param.data.copy_(torch.from_numpy(array))
        return p

    def to_weights(self) -> ProjectorWeights:
        arrays = [t.detach().float().cpu().numpy() for t in (self.norm.weight, self.norm.bias, self.fc1.weight,
                                                             self.fc1.bias, self.fc2.weight, self.fc2.bias)]
        return ProjectorWeights(self.dims, *arrays)

    def forward(self, frames: Tensor) -> Tensor:
        """[b, t, d_encoder] -> [b, ceil(t / stack), d_llm]; the last vector's missing frames are zeros."""
        frames = F.pad(frames, (0, 0, 0, -frames.shape[1] % self.dims.stack))
        b, t, d = frames.shape
        x = self.norm(frames.reshape(b, t // self.dims.stack, self.dims.d_in))
        return self.fc2(F.gelu(self.fc1(x)))


class SpeechEncoder(nn.Module):
    """PCM -> speech vectors in the LLM's embedding space: what encoder.onnx computes."""

    def __init__(self, encoder: nn.Module, projector: Projector):
        super().__init__()
        self.encoder, self.projector = encoder, projector

    def forward(self, pcm: Tensor) -> Tensor:
        return self.projector(self.encoder(pcm))


@dataclass(frozen=True)
class PromptIds:
    """The prompt template as token ids of one tokenizer (the LLM's own)."""

    prefix: list[int]
    suffix: list[int]
    stop: list[int]


class SpeechLLM(nn.Module):
    def __init__(self, speech_encoder: SpeechEncoder, llm: nn.Module, prompt: PromptIds):
        super().__init__()
        self.speech_encoder, self.llm, self.prompt = speech_encoder, llm, prompt

    def embed_tokens(self, ids: list[int] | Tensor) -> Tensor:
        ids = torch.as_tensor(ids, dtype=torch.long)
        return self.llm.get_input_embeddings()(ids)

    def prompt_embeddings(self, speech: Tensor) -> Tensor:
        """[n, d_llm] speech vectors -> [1, prefix + n + suffix, d_llm]."""
        parts = [self.embed_tokens(self.prompt.prefix), speech, self.embed_tokens(self.prompt.suffix)]
        return torch.cat(parts)[None]

    @torch.no_grad()
    def greedy_decode(self, pcm: Tensor, max_new_tokens: int) -> list[int]:
        """Reference decoding: greedy argmax with a KV cache, stopping at a stop token."""
        speech = self.speech_encoder(pcm[None])[0]
        # transformers 5.x renamed past_key_values to cache; accept either.
        cache_name = "cache" if "cache" in inspect.signature(self.llm.forward).parameters else "past_key_values"
        out = self.llm(inputs_embeds=self.prompt_embeddings(speech), use_cache=True)
        tokens: list[int] = []
        for _ in range(max_new_tokens):
            nxt = int(out.logits[0, -1].argmax())
            if nxt in self.prompt.stop:
                break
            tokens.append(nxt)
            out = self.llm(input_ids=torch.tensor([[nxt]]), use_cache=True, **{cache_name: getattr(out, cache_name)})
        return tokens
