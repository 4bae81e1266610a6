"""The LLM side of export: quantise a GGUF with llama.cpp's own quantiser (in process, no torch)."""
from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

QUANTIZATIONS = {"f16": 1, "q4_0": 2, "q8_0": 7, "q4_k_m": 15}  # llama_ftype values


def quantize_gguf(source: str | Path, target: str | Path, quantization: str, n_threads: int = 0) -> None:
    """Write `target` as `source` re-quantised; from a quantised source the weights are dequantised first."""
    from voxprompt.llm import llama_library, silence_llama_logs

    llama_cpp = llama_library()

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


def check_prompt_tokenizes(gguf_path: Path, texts: list[str]) -> None:
    """llama.cpp aborts the whole process on text its vocabulary cannot encode (a SentencePiece vocabulary
    without byte fallback, say): try the prompt's texts in a child process, and say so instead."""
    import subprocess
    import sys

    from voxprompt.manifest import ModelError

    script = ("import sys, llama_cpp\n"
              "from voxprompt.llm import silence_llama_logs\n"
              "silence_llama_logs()\n"
              "m = llama_cpp.Llama(model_path=sys.argv[1], vocab_only=True, verbose=False)\n"
              "for t in sys.argv[2:]:\n"
              "    m.tokenize(t.encode(), add_bos=False, special=True)\n")
    done = subprocess.run([sys.executable, "-c", script, str(gguf_path), *texts], capture_output=True, text=True)
    if done.returncode != 0:
        raise ModelError(f"{gguf_path.name}: llama.cpp cannot tokenize the prompt {texts!r} with this vocabulary "
                         "(no byte fallback for some of its characters?); export an LLM whose tokenizer covers it")


def token_embeddings(gguf_path: str | Path) -> np.ndarray:
    """The LLM's token-embedding matrix [n_vocab, width], dequantised as llama.cpp and transformers do."""
    import gguf
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(str(gguf_path))
    tensor = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    if tensor is None:
        raise ValueError(f"{gguf_path}: no token_embd.weight tensor")
    return dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
