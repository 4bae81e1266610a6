"""Write Whisper's encoder + the projector as one ONNX graph, straight from numpy weights (no torch).

Graph: pcm [b, samples] -> log-mel (STFT as a strided Conv) -> conv/GELU x2 -> pre-LN transformer
-> stack `projector.stack` frames -> LayerNorm -> Linear -> GELU -> Linear -> speech [b, n, d_llm].
With a window, the pcm is zero-padded to the window inside the graph (Whisper's 30 s, the only input
length Whisper was trained on) and only the frames of the real samples go on to the projector.
The PyTorch twin is models/whisper.py + models/speech_llm.py; the tests hold the two together.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from voxprompt.models.ctranslate2 import CT2Model
from voxprompt.models.frontend import ENCODER_STRIDE, FRAMES_PER_PAD_UNIT, HOP_LENGTH, N_FFT, dft_basis, mel_filters
from voxprompt.models.projector import ProjectorWeights
from voxprompt.models.whisper_dims import WhisperDims

OPSET = 17
IR_VERSION = 8  # what opset 17 needs; newer onnx packages default to IRs older runtimes refuse


class _Graph:
    """Tiny builder: every call adds one node and returns its output name."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._n = 0

    def const(self, value, name: str | None = None) -> str:
        self._n += 1
        name = name or f"const_{self._n}"
        array = np.asarray(value)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs) -> str:
        self._n += 1
        out = f"{op_type.lower()}_{self._n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def gelu(self, x: str) -> str:  # exact GELU (opset 17 has no Gelu op)
        erf = self.op("Erf", self.op("Mul", x, self.const(np.float32(1 / math.sqrt(2)))))
        return self.op("Mul", self.op("Mul", x, self.const(np.float32(0.5))), self.op("Add", erf, self.const(np.float32(1.0))))

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray) -> str:
        return self.op("Add", self.op("MatMul", x, self.const(np.ascontiguousarray(weight.T))), self.const(bias))

    def layer_norm(self, x: str, gamma: np.ndarray, beta: np.ndarray) -> str:
        return self.op("LayerNormalization", x, self.const(gamma), self.const(beta), axis=-1, epsilon=1e-5)


def _log_mel(g: _Graph, pcm: str, n_mels: int) -> str:
    x = g.op("Unsqueeze", pcm, g.const(np.array([1], np.int64)))  # [b, 1, samples]
    x = g.op("Pad", x, g.const(np.array([0, 0, N_FFT // 2, 0, 0, N_FFT // 2], np.int64)), mode="reflect")
    real, imag = dft_basis()
    spec = g.op("Conv", x, g.const(np.concatenate([real, imag])[:, None, :]), strides=[HOP_LENGTH])
    # Drop the last STFT frame as Whisper does: frames = samples // HOP_LENGTH.
    spec = g.op("Slice", spec, g.const(np.array([0], np.int64)), g.const(np.array([-1], np.int64)),
                g.const(np.array([2], np.int64)))
    n_bins = N_FFT // 2 + 1
    re = g.op("Slice", spec, g.const(np.array([0], np.int64)), g.const(np.array([n_bins], np.int64)), g.const(np.array([1], np.int64)))
    im = g.op("Slice", spec, g.const(np.array([n_bins], np.int64)), g.const(np.array([2 * n_bins], np.int64)), g.const(np.array([1], np.int64)))
    power = g.op("Add", g.op("Mul", re, re), g.op("Mul", im, im))
    mel = g.op("MatMul", g.const(mel_filters(n_mels)), power)  # [b, n_mels, frames]
    log = g.op("Mul", g.op("Log", g.op("Max", mel, g.const(np.float32(1e-10)))), g.const(np.float32(1 / math.log(10))))
    floor = g.op("Sub", g.op("ReduceMax", log, axes=[1, 2], keepdims=1), g.const(np.float32(8.0)))
    log = g.op("Max", log, floor)
    return g.op("Mul", g.op("Add", log, g.const(np.float32(4.0))), g.const(np.float32(0.25)))


def _attention(g: _Graph, x: str, m: CT2Model, prefix: str, n_head: int, d: int) -> str:
    h = g.layer_norm(x, m[f"{prefix}/layer_norm/gamma"], m[f"{prefix}/layer_norm/beta"])
    qkv = g.linear(h, m[f"{prefix}/linear_0/weight"], m[f"{prefix}/linear_0/bias"])
    heads = g.const(np.array([0, 0, 3, n_head, d // n_head], np.int64))
    qkv = g.op("Transpose", g.op("Reshape", qkv, heads), perm=[2, 0, 3, 1, 4])  # [3, b, h, t, dh]
    pick = lambda i: g.op("Gather", qkv, g.const(np.array(i, np.int64)), axis=0)
    q, k, v = pick(0), pick(1), pick(2)
    scores = g.op("Mul", g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2])),
                  g.const(np.float32(1 / math.sqrt(d // n_head))))
    y = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)  # [b, h, t, dh]
    y = g.op("Reshape", g.op("Transpose", y, perm=[0, 2, 1, 3]), g.const(np.array([0, 0, d], np.int64)))
    return g.op("Add", x, g.linear(y, m[f"{prefix}/linear_1/weight"], m[f"{prefix}/linear_1/bias"]))


def _feed_forward(g: _Graph, x: str, m: CT2Model, prefix: str) -> str:
    h = g.layer_norm(x, m[f"{prefix}/layer_norm/gamma"], m[f"{prefix}/layer_norm/beta"])
    h = g.gelu(g.linear(h, m[f"{prefix}/linear_0/weight"], m[f"{prefix}/linear_0/bias"]))
    return g.op("Add", x, g.linear(h, m[f"{prefix}/linear_1/weight"], m[f"{prefix}/linear_1/bias"]))


def _pad_to_whole_vectors(g: _Graph, x: str, n_frames: str, stack: int) -> str:
    """Zero frames at the end up to a multiple of `stack`, as the PyTorch projector pads them."""
    if FRAMES_PER_PAD_UNIT % stack == 0:
        return x  # the audio padding policy already gives whole vectors
    k = g.const(np.array([stack], np.int64))
    missing = g.op("Mod", g.op("Sub", k, g.op("Mod", n_frames, k)), k)
    # pads of [b, t, d]: begins (0, 0, 0), ends (0, missing, 0)
    pads = g.op("Concat", g.const(np.zeros(4, np.int64)), missing, g.const(np.zeros(1, np.int64)), axis=0)
    return g.op("Pad", x, pads)


def _pad_to_window(g: _Graph, pcm: str, window_samples: int) -> tuple[str, str]:
    """Zeros after the pcm up to the window; returns it and the pcm's own frame count (samples // 320)."""
    samples = g.op("Slice", g.op("Shape", pcm), g.const(np.array([1], np.int64)), g.const(np.array([2], np.int64)))
    missing = g.op("Max", g.op("Sub", g.const(np.array([window_samples], np.int64)), samples),
                   g.const(np.array([0], np.int64)))
    padded = g.op("Pad", pcm, g.op("Concat", g.const(np.zeros(3, np.int64)), missing, axis=0))
    own_frames = g.op("Div", samples, g.const(np.array([HOP_LENGTH * ENCODER_STRIDE], np.int64)))
    return padded, own_frames


def build_whisper_encoder_onnx(m: CT2Model, projector: ProjectorWeights, path: str | Path,
                               window_samples: int = 0) -> None:
    """Write encoder.onnx: pcm [b, samples] (a multiple of the pad unit) -> speech [b, n, d_llm].

    window_samples > 0: each input is encoded inside a window of that many samples (zeros after it)."""
    dims = WhisperDims.from_ct2(m)
    if projector.dims.d_encoder != dims.n_audio_state:
        raise ValueError(f"projector expects {projector.dims.d_encoder}-wide frames, "
                         f"the Whisper encoder gives {dims.n_audio_state}")
    g = _Graph()
    pcm, own_frames = _pad_to_window(g, "pcm", window_samples) if window_samples else ("pcm", None)
    mel = _log_mel(g, pcm, dims.n_mels)
    x = g.gelu(g.op("Conv", mel, g.const(m["encoder/conv1/weight"]), g.const(m["encoder/conv1/bias"]), pads=[1, 1]))
    x = g.gelu(g.op("Conv", x, g.const(m["encoder/conv2/weight"]), g.const(m["encoder/conv2/bias"]), pads=[1, 1], strides=[2]))
    x = g.op("Transpose", x, perm=[0, 2, 1])  # [b, t, d]
    n_frames = g.op("Slice", g.op("Shape", x), g.const(np.array([1], np.int64)), g.const(np.array([2], np.int64)))
    positions = g.op("Slice", g.const(m["encoder/position_encodings/encodings"]), g.const(np.array([0], np.int64)), n_frames)
    x = g.op("Add", x, positions)
    for i in range(dims.n_audio_layer):
        x = _attention(g, x, m, f"encoder/layer_{i}/self_attention", dims.n_audio_head, dims.n_audio_state)
        x = _feed_forward(g, x, m, f"encoder/layer_{i}/ffn")
    x = g.layer_norm(x, m["encoder/layer_norm/gamma"], m["encoder/layer_norm/beta"])
    if own_frames is not None:  # the window's zeros were context; only the pcm's own frames are speech
        x = g.op("Slice", x, g.const(np.array([0], np.int64)), own_frames, g.const(np.array([1], np.int64)))
        n_frames = own_frames

    p = projector
    x = _pad_to_whole_vectors(g, x, n_frames, p.dims.stack)
    x = g.op("Reshape", x, g.const(np.array([0, -1, p.dims.d_in], np.int64)))
    x = g.layer_norm(x, p.norm_weight, p.norm_bias)
    x = g.gelu(g.linear(x, p.fc1_weight, p.fc1_bias))
    speech = g.linear(x, p.fc2_weight, p.fc2_bias)
    g.nodes.append(helper.make_node("Identity", [speech], ["speech"]))

    graph = helper.make_graph(
        g.nodes, "voxprompt_whisper_encoder",
        [helper.make_tensor_value_info("pcm", TensorProto.FLOAT, ["batch", "samples"])],
        [helper.make_tensor_value_info("speech", TensorProto.FLOAT, ["batch", "vectors", p.dims.d_llm])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="voxprompt")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def quantize_matmul_weights(path: str | Path) -> None:
    """The graph's MatMul weights to int8 in place (dynamic quantisation: activations are quantised per
    run), as faster-whisper runs Whisper. Default model, 2 cores: 48 -> 16 MB on disk, 53 -> 21 MB of
    RSS, as fast, WER unchanged (game_dev first 300: 29.2 against 29.0 %; real_dev 18.3 against 18.6 %)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(path)
    quantized = path.with_suffix(".int8.onnx")
    logging.disable(logging.WARNING)  # its advice to pre-process the graph (shape inference) is for CNNs
    try:
        quantize_dynamic(path, quantized, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    finally:
        logging.disable(logging.NOTSET)
    quantized.replace(path)
