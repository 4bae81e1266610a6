"""The LLM side of export: quantise a GGUF with llama.cpp's own quantiser (in process, no torch)."""
from __future__ import annotations

import ctypes
from pathlib import Path

QUANTIZATIONS = {"f16": 1, "q4_0": 2, "q8_0": 7, "q4_k_m": 15}  # llama_ftype values


def quantize_gguf(source: str | Path, target: str | Path, quantization: str, n_threads: int = 0) -> None:
    """Write `target` as `source` re-quantised; from a quantised source the weights are dequantised first."""
    import llama_cpp

    from voxprompt.llm import silence_llama_logs

    silence_llama_logs()  # the quantiser reports every tensor on stderr
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}: choose one of {', '.join(QUANTIZATIONS)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANTIZATIONS[quantization]
    params.allow_requantize = True
    params.nthread = n_threads
    target = Path(target)
    partial = target.with_suffix(".partial")
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params))
    if status != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"llama.cpp could not quantise {source} to {quantization} (status {status})")
    partial.replace(target)


def finish_f16(f16: Path, target: Path, quantization: str, log=print) -> None:
    """An f16 GGUF written by an exporter becomes `target` at the chosen quantisation (the f16 file goes)."""
    if quantization == "f16":
        f16.replace(target)
        return
    log(f"quantising to {quantization}")
    quantize_gguf(f16, target, quantization)
    f16.unlink()
