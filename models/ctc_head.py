"""The CTC head's trained parts as numpy arrays (no torch): a blank vector, a scale, and the token ids
whose LLM embedding rows are its classes. The rows are the LLM's, so export takes them from the GGUF
and writes the runtime's ctc.npz (app/ctc.py reads it)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CtcHeadWeights:
    blank: np.ndarray  # [width] float32
    scale: float
    token_ids: np.ndarray  # [n] int32, class i + 1 is token_ids[i]
    # Optional: each speech vector becomes `upsample` CTC frames (vector @ W.T + b, split in `upsample`
    # parts), so a projector with few vectors per second still has frames enough for fast speech.
    upsample_weight: np.ndarray | None = None  # [upsample * width, width]
    upsample_bias: np.ndarray | None = None  # [upsample * width]

    @property
    def upsample(self) -> int:
        return 1 if self.upsample_weight is None else len(self.upsample_weight) // len(self.blank)

    def _upsample_arrays(self) -> dict[str, np.ndarray]:
        if self.upsample_weight is None:
            return {}
        return {"upsample_weight": self.upsample_weight.astype(np.float16),  # half the size; scores barely move
                "upsample_bias": self.upsample_bias.astype(np.float16)}

    def save(self, path: str | Path) -> None:
        np.savez(path, blank=self.blank.astype(np.float32), scale=np.float32(self.scale),
                 token_ids=self.token_ids.astype(np.int32), **self._upsample_arrays())

    @classmethod
    def load(cls, path: str | Path) -> "CtcHeadWeights":
        with np.load(path) as data:
            upsample = [data[k].astype(np.float32) if k in data else None for k in ("upsample_weight", "upsample_bias")]
            return cls(data["blank"].astype(np.float32), float(data["scale"]), data["token_ids"].astype(np.int32),
                       *upsample)

    def classes(self, embeddings: np.ndarray) -> np.ndarray:
        """[1 + n, width]: the blank, then the LLM's embedding rows of the token ids."""
        if embeddings.shape[1] != len(self.blank):
            raise ValueError(f"the CTC head is {len(self.blank)} wide, the LLM's embeddings {embeddings.shape[1]}")
        return np.concatenate([self.blank[None], embeddings[self.token_ids]]).astype(np.float32)

    def write_runtime(self, embeddings: np.ndarray, path: str | Path) -> None:
        """The runtime's file: the classes (float16 halves it, the scores barely move), scale, token ids."""
        np.savez(path, classes=self.classes(embeddings).astype(np.float16), scale=np.float32(self.scale),
                 token_ids=self.token_ids.astype(np.int32), **self._upsample_arrays())
