"""The bridge: stack neighbouring encoder frames (shorter sequence) and map them to the LLM's width.

Weights are plain numpy arrays (`ProjectorWeights`), so the runtime's default-model build can write
them into the encoder graph without torch; `models.speech_llm.Projector` is the trainable twin.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ProjectorDims:
    stack: int  # encoder frames per speech vector
    d_encoder: int
    d_hidden: int
    d_llm: int

    @property
    def d_in(self) -> int:
        return self.stack * self.d_encoder


@dataclass(frozen=True)
class ProjectorWeights:
    """LayerNorm(stacked frames) -> Linear -> GELU -> Linear. Linear weights are [out, in]."""

    dims: ProjectorDims
    norm_weight: np.ndarray
    norm_bias: np.ndarray
    fc1_weight: np.ndarray
    fc1_bias: np.ndarray
    fc2_weight: np.ndarray
    fc2_bias: np.ndarray

    _ARRAYS = ("norm_weight", "norm_bias", "fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias")

    @classmethod
    def init(cls, dims: ProjectorDims, seed: int = 0) -> "ProjectorWeights":
        """Untrained weights: PyTorch's default Linear init, deterministic for a seed."""
        rng = np.random.default_rng(seed)

        def linear(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
            bound = 1.0 / np.sqrt(n_in)
            return (rng.uniform(-bound, bound, (n_out, n_in)).astype(np.float32),
                    rng.uniform(-bound, bound, n_out).astype(np.float32))

        fc1 = linear(dims.d_hidden, dims.d_in)
        fc2 = linear(dims.d_llm, dims.d_hidden)
        return cls(dims, np.ones(dims.d_in, np.float32), np.zeros(dims.d_in, np.float32), *fc1, *fc2)

    def save(self, path: str | Path) -> None:
        arrays = {name: getattr(self, name).astype(np.float16) for name in self._ARRAYS}
        np.savez(path, dims=np.array(list(asdict(self.dims).values())), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "ProjectorWeights":
        with np.load(path) as data:
            dims = ProjectorDims(*(int(v) for v in data["dims"]))
            return cls(dims, *(data[name].astype(np.float32) for name in cls._ARRAYS))
