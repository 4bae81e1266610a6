"""Token embedding rows read from an LLM's GGUF, exactly as llama.cpp looks them up.

A llama.cpp batch holds either token ids or embeddings, so a speech prompt took two passes: the speech
vectors, then the suffix tokens (and dictation's given words). With the suffix's own rows beside the
speech vectors it takes one pass (2 CPU cores: ~35 ms less a prompt). The rows are dequantised from
the file's `token_embd.weight` as ggml does it; the LLM checks them against its token path at load.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Sequence

import numpy as np

_GGUF_MAGIC = b"GGUF"
# sizes of GGUF metadata value types 0..12 (8: string, 9: array are read apart)
_SCALAR_BYTES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


class _Cursor:
    def __init__(self, data: np.memmap):
        self.data, self.at = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def string(self) -> bytes:
        n = self.take("Q")
        self.at += n
        return bytes(self.data[self.at - n: self.at])

    def skip_value(self, kind: int) -> None:
        if kind == _STRING:
            n = self.take("Q")
            self.at += n
        elif kind == _ARRAY:
            inner, count = self.take("IQ")
            if inner in _SCALAR_BYTES:
                self.at += count * _SCALAR_BYTES[inner]
            else:
                for _ in range(count):
                    self.skip_value(inner)
        else:
            self.at += _SCALAR_BYTES[kind]


class TokenRows:
    """`rows(ids)`: the input embedding of each token id, float32 [n, width]."""

    TENSOR = "token_embd.weight"

    def __init__(self, gguf_path: str | Path):
        """ValueError when the file is no GGUF or its token rows are of a type read here."""
        header = np.memmap(gguf_path, dtype=np.uint8, mode="r")
        cursor = _Cursor(header)
        if bytes(header[:4]) != _GGUF_MAGIC:
            raise ValueError(f"{gguf_path}: not a GGUF file")
        cursor.at = 4
        version, n_tensors, n_fields = cursor.take("IQQ")
        if version < 2:
            raise ValueError(f"{gguf_path}: GGUF version {version} is too old")
        alignment = 32
        for _ in range(n_fields):
            key, kind = cursor.string(), cursor.take("I")
            if key == b"general.alignment" and kind == 4:
                alignment = cursor.take("I")
            else:
                cursor.skip_value(kind)
        found = None
        for _ in range(n_tensors):
            name, n_dims = cursor.string(), cursor.take("I")
            dims = [cursor.take("Q") for _ in range(n_dims)]
            kind, offset = cursor.take("IQ")
            if name == self.TENSOR.encode():
                found = dims, kind, offset
        data_start = -(-cursor.at // alignment) * alignment
        del header, cursor  # the metadata's pages (the vocabulary: megabytes) leave the process
        if found is None:
            raise ValueError(f"{gguf_path}: no {self.TENSOR}")
        (width, n_rows), kind, offset = found
        if kind not in _ROW_TYPES:
            raise ValueError(f"{gguf_path}: {self.TENSOR} is of ggml type {kind}, not read here")
        self.type, row_bytes = kind, _ROW_TYPES[kind][0](int(width))
        self.width, self.n_rows = int(width), int(n_rows)
        self._table = np.memmap(gguf_path, dtype=np.uint8, mode="r", offset=data_start + offset,
                                shape=(self.n_rows, row_bytes))

    def rows(self, ids: Sequence[int]) -> np.ndarray:
        raw = np.asarray(self._table[np.asarray(ids, dtype=np.int64)])
        return _ROW_TYPES[self.type][1](raw).reshape(len(ids), self.width)


def _q8_0(raw: np.ndarray) -> np.ndarray:
    """ggml's dequantize_row_q8_0: blocks of an f16 scale and 32 int8 values, value * scale in f32."""
    blocks = raw.reshape(len(raw), -1, 34)
    scale = blocks[:, :, :2].copy().view(np.float16).astype(np.float32)
    return (blocks[:, :, 2:].copy().view(np.int8).astype(np.float32) * scale).reshape(len(raw), -1)


def _bf16(raw: np.ndarray) -> np.ndarray:
    return (raw.copy().view(np.uint16).astype(np.uint32) << 16).view(np.float32)


# ggml types read here: (row bytes for a width, dequantise rows); others keep the token path.
_ROW_TYPES = {
    0: (lambda width: 4 * width, lambda raw: raw.copy().view(np.float32)),  # F32
    1: (lambda width: 2 * width, lambda raw: raw.copy().view(np.float16).astype(np.float32)),  # F16
    8: (lambda width: width // 32 * 34, _q8_0),  # Q8_0
    30: (lambda width: 2 * width, _bf16),  # BF16
}
