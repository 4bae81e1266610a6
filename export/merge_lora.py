"""Fold a GGUF LoRA adapter into its base GGUF (numpy, no torch): W += alpha / rank * B @ A.

The result is written at f16 and then quantised by llama.cpp (q8_0 keeps the adapter's effect; merging
into a 4-bit base loses most of it). Decoding then pays for no adapter matmuls at run time.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def merge_lora(base: Path, adapter: Path, out: Path) -> int:
    """Write base + adapter to `out` as f16 GGUF; returns how many weight matrices the adapter changed."""
    import gguf
    from gguf.quants import dequantize

    reader, lora = gguf.GGUFReader(str(base)), gguf.GGUFReader(str(adapter))
    alpha = float(lora.fields["adapter.lora.alpha"].contents())
    factors: dict[str, dict[str, np.ndarray]] = {}
    for t in lora.tensors:
        name, part = t.name.rsplit(".", 1)  # blk.0.attn_q.weight . lora_a
        factors.setdefault(name, {})[part] = dequantize(t.data, t.tensor_type).astype(np.float32)

    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(str(out), arch)
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in ("general.architecture", "general.file_type"):
            continue
        sub_type = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), field.types[0], sub_type=sub_type)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    merged = 0
    for t in reader.tensors:
        w = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(tuple(reversed([int(d) for d in t.shape])))
        if t.name in factors:
            a, b = factors[t.name]["lora_a"], factors[t.name]["lora_b"]  # [rank, in], [out, rank]
            w = w + (alpha / a.shape[0]) * (b @ a)
            merged += 1
        writer.add_tensor(t.name, w.astype(np.float16) if w.ndim == 2 else w)
    if merged != len(factors):
        raise ValueError(f"{adapter}: {len(factors) - merged} adapter tensors have no match in {base}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return merged
