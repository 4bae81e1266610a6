"""encoder.onnx under ONNX Runtime: 16 kHz PCM of one segment -> speech vectors [n, d_llm]."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxprompt.audio import SAMPLE_RATE
from voxprompt.manifest import EncoderSpec, ModelError


@dataclass(frozen=True)
class EncoderOptions:
    device: str = "auto"  # auto: CUDA when ONNX Runtime can load it, else CPU; or "cuda" / "cpu"
    n_threads: int = 0  # 0: ONNX Runtime's choice (one per physical core)


def _cuda_session(model: str | bytes, options) -> "object | None":
    """Try the CUDA provider quietly; None when its libraries (CUDA, cuDNN) cannot be loaded."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return None
    import importlib.util

    if hasattr(ort, "preload_dlls") and importlib.util.find_spec("nvidia") is not None:
        try:  # CUDA/cuDNN installed as pip packages (nvidia-*): load them the way ORT expects
            ort.preload_dlls()
        except Exception:
            pass
    ort.set_default_logger_severity(4)  # a failed CUDA load is an expected outcome, not an error to print
    try:
        session = ort.InferenceSession(model, options, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    finally:
        ort.set_default_logger_severity(2)
    return session if session.get_providers()[0] == "CUDAExecutionProvider" else None


def open_session(model: Path | bytes, options: EncoderOptions):
    """An ONNX Runtime session on CUDA when asked for or available, else on the CPU."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = options.n_threads
    # ORT's worker threads spin between runs by default, stealing the cores llama.cpp needs.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No CPU memory arena: it keeps the largest segment's activations for good (+100 MB after one 20 s
    # segment, RSS 117 -> 218 MB), and plain allocations encode as fast here.
    so.enable_cpu_mem_arena = False
    source = model if isinstance(model, bytes) else str(model)  # a file, or a graph made in memory
    session = None
    if options.device in ("auto", "cuda"):
        session = _cuda_session(source, so)
        if session is None and options.device == "cuda":
            raise ModelError("--device cuda: ONNX Runtime has no working CUDA provider here; "
                             "install onnxruntime-gpu with CUDA 12/13 and cuDNN 9 (see README), or use --device cpu")
    if session is None:
        session = ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])
    return session


class SpeechEncoder:
    def __init__(self, onnx_path: str | Path, spec: EncoderSpec, options: EncoderOptions = EncoderOptions()):
        self.spec = spec
        session = open_session(Path(onnx_path), options)
        self._session = session
        self.device = "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        self.width = int(session.get_outputs()[0].shape[-1])
        self.max_samples = int(spec.max_seconds * SAMPLE_RATE)

    def pad(self, pcm: np.ndarray) -> np.ndarray:
        """The model's padding policy: zeros at the end up to a multiple of the pad unit."""
        unit = self.spec.pad_multiple
        target = max(unit, self.spec.min_samples, -(-len(pcm) // unit) * unit)
        return np.pad(np.asarray(pcm, np.float32), (0, target - len(pcm)))

    def __call__(self, pcm: np.ndarray) -> np.ndarray:
        if len(pcm) > self.max_samples:
            raise ValueError(f"segment of {len(pcm) / SAMPLE_RATE:.1f} s is longer than the encoder's "
                             f"{self.spec.max_seconds:.0f} s")
        return self._session.run(None, {"pcm": self.pad(pcm)[None]})[0][0]
