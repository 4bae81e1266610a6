"""LoRA adapters as GGUF, in numpy (no torch): fold some into their base GGUF (W += scale * alpha / rank
* B @ A), or express what fine-tuning changed in one as an adapter of its own (lora_difference).

Folded, an adapter costs nothing at run time; applied at load, llama.cpp adds two small matmuls per
adapted weight and token (+17-35 % decoding time on 2 cores, whatever the rank). The default model's
own adapter is folded at f16 and then quantised by llama.cpp (q8_0 keeps the adapter's effect;
merging into a 4-bit base loses most of it); a domain adapter is folded into the built model as it is.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def merge_lora(base: Path, adapter: Path, out: Path) -> int:
    """Write base + adapter to `out` as f16 GGUF (for llama.cpp's quantiser); returns how many weight
    matrices the adapter changed."""
    return fold_loras(base, [(adapter, 1.0)], out, keep_types=False)


def fold_loras(base: Path, adapters: Sequence[tuple[Path, float]], out: Path, keep_types: bool = True) -> int:
    """Write `base` with every (adapter, scale) folded into its weights; returns how many weight matrices
    changed. keep_types: each weight keeps its type (a q8_0 model stays q8_0, quantised again where an
    adapter changed it; the others are copied byte for byte); else the 2-D weights are written f16."""
    import gguf
    from gguf.quants import dequantize, quantize

    reader = gguf.GGUFReader(str(base))
    deltas: dict[str, list[tuple[float, np.ndarray, np.ndarray]]] = {}
    for path, scale in adapters:
        alpha, factors = read_lora(path)
        unknown = set(factors) - {t.name for t in reader.tensors}
        if unknown:
            raise ValueError(f"{path}: {len(unknown)} adapter tensors have no match in {base}")
        for name, f in factors.items():  # [rank, in], [out, rank]
            deltas.setdefault(name, []).append((scale * alpha / f["lora_a"].shape[0], f["lora_a"], f["lora_b"]))

    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(str(out), arch)
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        if field.name == "general.file_type" and not keep_types:
            continue
        sub_type = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), field.types[0], sub_type=sub_type)
    if not keep_types:
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    def folded(t) -> np.ndarray:
        if keep_types and t.name not in deltas:
            return t.data
        w = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(tuple(reversed([int(d) for d in t.shape])))
        for s, a, b in deltas.get(t.name, ()):
            w += s * (b @ a)
        if keep_types:
            return quantize(w, t.tensor_type)
        return w.astype(np.float16) if w.ndim == 2 else w

    for t in reader.tensors:  # tensors are streamed one by one: a folded 135M model never sits in memory
        if keep_types:
            writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, raw_dtype=t.tensor_type)
        else:
            dtype = np.dtype(np.float16 if len(t.shape) == 2 else np.float32)
            shape = tuple(reversed([int(d) for d in t.shape]))
            writer.add_tensor_info(t.name, shape, dtype, int(np.prod(shape)) * dtype.itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in reader.tensors:
        writer.write_tensor_data(folded(t))
    writer.close()
    return len(deltas)


def read_lora(path: Path) -> tuple[float, dict[str, dict[str, np.ndarray]]]:
    """A LoRA adapter GGUF's alpha and its factors by weight name: {"lora_a": [rank, in], "lora_b": [out, rank]}."""
    import gguf
    from gguf.quants import dequantize

    lora = gguf.GGUFReader(str(path))
    factors: dict[str, dict[str, np.ndarray]] = {}
    for t in lora.tensors:
        name, part = t.name.rsplit(".", 1)  # blk.0.attn_q.weight . lora_a
        shape = tuple(reversed([int(d) for d in t.shape]))
        factors.setdefault(name, {})[part] = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
    return float(lora.fields["adapter.lora.alpha"].contents()), factors


def lora_writer(path: Path, alpha: float):
    """A GGUFWriter for a llama.cpp LoRA adapter (its header written; tensors: <weight>.lora_a / .lora_b)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    return writer


def lora_difference(before: Path, after: Path, out: Path) -> int:
    """An adapter that turns a model with `before` merged in into one with `after`: exactly
    s(B'A' - BA) = s [B' | -B] [A' ; A], a LoRA of twice the rank whose alpha keeps the scale s = alpha / rank.
    So a domain adapter trained on top of the default model's own (merged) adapter applies at load.
    Returns the number of weight matrices it changes."""
    alpha, old = read_lora(before)
    alpha_after, new = read_lora(after)
    if alpha != alpha_after or set(old) != set(new):
        raise ValueError(f"{after} does not continue {before}: other matrices or another alpha")
    writer = lora_writer(out, 2 * alpha)
    changed = 0
    for name in sorted(new):
        (a0, b0), (a1, b1) = (old[name]["lora_a"], old[name]["lora_b"]), (new[name]["lora_a"], new[name]["lora_b"])
        if a0.shape != a1.shape or b0.shape != b1.shape:
            raise ValueError(f"{name}: rank or shape differs between {before} and {after}")
        if np.array_equal(a0, a1) and np.array_equal(b0, b1):
            continue  # not trained: no change to carry, and one pair of matmuls less per token
        changed += 1
        writer.add_tensor(name + ".lora_a", np.concatenate([a1, a0], axis=0).astype(np.float16))
        writer.add_tensor(name + ".lora_b", np.concatenate([b1, -b0], axis=1).astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return changed
