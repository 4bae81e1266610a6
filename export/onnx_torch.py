"""A PyTorch speech encoder (raw 16 kHz PCM [1, n] -> vectors [1, t, d]) -> encoder.onnx, checked against itself."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from voxprompt.audio import SAMPLE_RATE

OPSET = 17


def conv_output_length(n: int, layers: list[tuple[int, int]]) -> int:
    """Frames left after unpadded strided convolutions [(kernel, stride), ...]; <= 0 means too short."""
    for kernel, stride in layers:
        if n < kernel:
            return 0
        n = (n - kernel) // stride + 1
    return n


def min_input_samples(layers: list[tuple[int, int]], frames: int = 1) -> int:
    """The shortest input (to 16 samples) that leaves at least `frames` after the convolutions."""
    return next(n for n in range(16, 10 * SAMPLE_RATE, 16) if conv_output_length(n, layers) >= frames)


def export_torch_encoder(module, out: Path, check_seconds: tuple[float, ...] = (0.7, 3.3)) -> float:
    """torch.onnx.export with a dynamic length axis; returns the max abs difference ONNX vs PyTorch."""
    import onnxruntime as ort
    import torch

    module = module.eval()
    example = torch.zeros(1, SAMPLE_RATE)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches
        torch.onnx.export(module, (example,), str(out), input_names=["pcm"], output_names=["vectors"],
                          dynamic_axes={"pcm": {1: "samples"}, "vectors": {1: "vectors"}},
                          opset_version=OPSET, dynamo=False)
    module.eval()  # the exporter restores the caller's training flag on the wrapper, recursively
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for seconds in check_seconds:  # lengths other than the traced one: the graph must not have baked it in
        pcm = (0.1 * rng.standard_normal((1, int(seconds * SAMPLE_RATE)))).astype(np.float32)
        with torch.no_grad():
            expected = module(torch.from_numpy(pcm)).numpy()
        got = session.run(None, {"pcm": pcm})[0]
        if got.shape != expected.shape:
            raise RuntimeError(f"encoder.onnx gives {got.shape} for {seconds} s, PyTorch {expected.shape}")
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst
