"""Reader for CTranslate2 `model.bin` files (the format Whisper ships in via faster-whisper).

Layout (little-endian): u32 version, str spec name, u32 revision, u32 n_vars, then per variable
str name, u8 rank, u32 dims[rank], u8 dtype, u32 n_bytes, raw bytes; then u32 n_aliases and
(alias, target) string pairs. A str is a u16 length that counts a trailing NUL.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_BFLOAT16 = 5


@dataclass(frozen=True)
class CT2Model:
    spec: str
    revision: int
    variables: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.variables[name]

    def scalar(self, name: str) -> int:
        return int(self.variables[name].reshape(()))


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ValueError(f"{getattr(f, 'name', 'model.bin')}: truncated CTranslate2 file")
    return data


def _u32(f: BinaryIO) -> int:
    return struct.unpack("<I", _read_exact(f, 4))[0]


def _str(f: BinaryIO) -> str:
    (n,) = struct.unpack("<H", _read_exact(f, 2))
    return _read_exact(f, n)[:-1].decode("utf-8")


def read_ct2_model(path: str | Path) -> CT2Model:
    """Read every variable of a CTranslate2 model file into float32/int numpy arrays."""
    with open(path, "rb") as f:
        version = _u32(f)
        if version < 5:
            raise ValueError(f"{path}: CTranslate2 format version {version} is too old (need >= 5)")
        spec = _str(f)
        revision = _u32(f)
        variables: dict[str, np.ndarray] = {}
        for _ in range(_u32(f)):
            name = _str(f)
            rank = _read_exact(f, 1)[0]
            dims = struct.unpack(f"<{rank}I", _read_exact(f, 4 * rank)) if rank else ()
            dtype_code = _read_exact(f, 1)[0]
            raw = _read_exact(f, _u32(f))
            if dtype_code == _BFLOAT16:
                bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
                array = bits.view(np.float32)
            elif dtype_code in _DTYPES:
                array = np.frombuffer(raw, dtype=_DTYPES[dtype_code])
            else:
                raise ValueError(f"{path}: variable {name} has unknown dtype code {dtype_code}")
            if array.dtype == np.float16:
                array = array.astype(np.float32)
            variables[name] = array.reshape(dims)
        for _ in range(_u32(f)):
            alias, target = _str(f), _str(f)
            variables[alias] = variables[target]
    return CT2Model(spec=spec, revision=revision, variables=variables)


_CODES = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3,
          np.dtype(np.float16): 4}


def write_ct2_model(path: str | Path, model: CT2Model, keep=lambda name: True, float_dtype=np.float16) -> None:
    """Write (a subset of) a model back in the same format: e.g. the encoder alone, to carry it light."""
    def put_str(f: BinaryIO, s: str) -> None:
        data = s.encode("utf-8") + b"\0"
        f.write(struct.pack("<H", len(data)) + data)

    names = [n for n in model.variables if keep(n)]
    with open(path, "wb") as f:
        f.write(struct.pack("<I", 6))
        put_str(f, model.spec)
        f.write(struct.pack("<II", model.revision, len(names)))
        for name in names:
            array = model.variables[name]
            if array.dtype == np.float32:
                array = array.astype(float_dtype)
            put_str(f, name)
            f.write(struct.pack("<B", array.ndim) + struct.pack(f"<{array.ndim}I", *array.shape))
            raw = np.ascontiguousarray(array).tobytes()
            f.write(struct.pack("<BI", _CODES[array.dtype], len(raw)) + raw)
        f.write(struct.pack("<I", 0))
