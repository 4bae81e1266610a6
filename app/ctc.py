"""The bridge's CTC head at decoding time: joint CTC/LLM scoring of the next token.

Training aligns the speech vectors with a CTC head whose classes are the LLM's own token embeddings
(plus a blank). Its posteriors are a second, frame-synchronous opinion on the transcript: search.py scores each
hypothesis' next tokens with the CTC prefix score (Watanabe et al. 2017, "Hybrid CTC/attention"),
which keeps the LLM from wandering off what was said (invented words, loops).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from voxprompt.encoder import EncoderOptions, open_session

NEG_INF = -np.inf
REACH_WINDOW = 40.0  # nats: e^-40 is below float64's precision (CtcPrefixScorer._first_frame)
BOUND_BLOCK = 8  # frames per block of CtcPrefixScorer.score_bounds (0.6 s at 12.5 frames a second)


@dataclass(frozen=True)
class CtcShift:
    """What an adapter's training changed in the CTC head's trained parts (`voxprompt adapt` tunes the head on
    the domain's speech): added to the model's head at the adapter's scale, as its LoRA is to the LLM. The
    classes are the LLM's embedding rows, so none is stored."""

    blank: np.ndarray  # [width]
    scale: float
    upsample_weight: np.ndarray | None = None  # [upsample * width, width]
    upsample_bias: np.ndarray | None = None

    @classmethod
    def between(cls, before, after) -> "CtcShift":
        """after - before, two heads' trained parts (models/ctc_head.CtcHeadWeights or alike)."""
        if (before.upsample_weight is None) != (after.upsample_weight is None):
            raise ValueError("one CTC head upsamples its frames, the other does not")
        diff = lambda a, b: None if a is None else (a.astype(np.float32) - b.astype(np.float32))  # noqa: E731
        return cls(diff(after.blank, before.blank), float(after.scale) - float(before.scale),
                   diff(after.upsample_weight, before.upsample_weight), diff(after.upsample_bias, before.upsample_bias))

    def save(self, path: str | Path) -> None:
        extra = {} if self.upsample_weight is None else {"upsample_weight": self.upsample_weight.astype(np.float16),
                                                         "upsample_bias": self.upsample_bias.astype(np.float32)}
        with open(path, "wb") as f:  # np.savez would add ".npz" to a name without it
            np.savez(f, blank=self.blank.astype(np.float32), scale=np.float32(self.scale), **extra)

    @classmethod
    def load(cls, path: str | Path) -> "CtcShift":
        with np.load(path) as data:
            upsample = [data[k].astype(np.float32) if k in data else None for k in ("upsample_weight", "upsample_bias")]
            return cls(data["blank"].astype(np.float32), float(data["scale"]), *upsample)


class CtcHead:
    """classes [1 + n, width] (the blank first, then LLM embedding rows), a scale, the rows' token ids.

    Scored in ONNX Runtime (like the encoder, its threads never spin: a numpy/OpenBLAS matmul leaves
    threads spinning that take the cores from llama.cpp, prompts then decode 2x slower). The graph also
    picks the classes some frame finds plausible, so the [T, 13k] matrix never leaves ONNX Runtime."""

    def __init__(self, path: str | Path, n_vocab: int, options: EncoderOptions = EncoderOptions(),
                 token_rows: str | Path | None = None, extra_tokens: Iterable[int] = (),
                 shifts: Iterable[tuple[CtcShift, float]] = ()):
        """`extra_tokens` (with `token_rows`, every token's embedding row): classes added to the trained
        ones, so that a context's or an adapter's words can be written (spelling_tokens). `shifts`: the
        adapters' changes to the head, each at its scale."""
        with np.load(path) as data:
            classes = data["classes"].astype(np.float32)
            token_ids = data["token_ids"].astype(np.int64)
            scale = np.float32(data["scale"])
            upsample = ((data["upsample_weight"].astype(np.float32), data["upsample_bias"].astype(np.float32))
                        if "upsample_weight" in data else None)
        for shift, weight in shifts:
            classes[0] += weight * shift.blank
            scale = np.float32(scale + weight * shift.scale)
            if upsample is not None and shift.upsample_weight is not None:
                upsample = (upsample[0] + weight * shift.upsample_weight, upsample[1] + weight * shift.upsample_bias)
        extra = np.setdiff1d(np.fromiter(extra_tokens, np.int64), token_ids)
        if len(extra) and token_rows is not None:
            rows = np.load(token_rows, mmap_mode="r")  # 57 MB on disk; only the rows asked for are read
            classes = np.concatenate([classes, np.asarray(rows[extra], np.float32)])
            token_ids = np.concatenate([token_ids, extra])
        weights = np.ascontiguousarray(classes.T) * scale  # [width, classes], the scale folded in
        self.width, self.n_classes = weights.shape
        self.class_of = np.zeros(n_vocab, np.int64)  # token id -> class; 0: not a CTC class
        self.class_of[token_ids] = np.arange(1, len(token_ids) + 1)
        self._weights = weights  # an input, not an initializer: ORT would hold two more copies of its 30 MB
        self._session = open_session(_head_graph(*weights.shape, upsample), options)

    def _run(self, outputs: list[str], speech: np.ndarray, floor: float) -> list[np.ndarray]:
        return self._session.run(outputs, {"speech": np.asarray(speech, np.float32), "weights": self._weights,
                                           "floor": np.array(floor, np.float32)})

    def log_probs(self, speech: np.ndarray) -> np.ndarray:
        """[n, width] speech vectors -> [n * upsample, classes] frame log-posteriors."""
        return self._run(["log_probs"], speech, 0.0)[0]

    def scorer(self, speech: np.ndarray, weight: float, candidates: int, floor: float = -10.0) -> "CtcPrefixScorer":
        kept, frames = self._run(["kept", "frames"], speech, floor)
        return CtcPrefixScorer(kept, frames, self.n_classes, self.class_of, weight, candidates, floor)


def spelled_words(text: str) -> set[str]:
    """The words of a context or an adapter's text, as written."""
    return set(re.findall(r"[A-Za-z0-9][A-Za-z0-9'-]*", text))


def spelling_tokens(tokenize: Callable[[str], list[int]], text: str) -> set[int]:
    """The tokens the LLM writes the words of `text` with (a context, an adapter's sentences): each word
    inside a sentence, first in one, and capitalised, since decoding can only propose what the CTC head
    has classes for."""
    tokens: set[int] = set()
    for word in spelled_words(text):
        for form in {word, word[0].upper() + word[1:]}:
            tokens.update(tokenize(" " + form))
            tokens.update(tokenize(form))
    return tokens


def _head_graph(width: int, n_classes: int, upsample: tuple[np.ndarray, np.ndarray] | None = None) -> bytes:
    """ONNX: speech [n, width], weights [width, classes], floor -> log_probs = LogSoftmax(frames @ weights)
    [T, classes]; kept: the blank and the classes above floor on some frame [k]; frames: their columns [T, k].
    The CTC frames are the speech vectors, or with `upsample` (W [u * width, width], b) u frames per vector."""
    from onnx import TensorProto, helper, numpy_helper

    blank = np.zeros(n_classes, bool)
    blank[0] = True
    node = helper.make_node
    initializers = [numpy_helper.from_array(blank, "blank"), numpy_helper.from_array(np.array([0], np.int64), "axis0")]
    frames = [node("Identity", ["speech"], ["ctc_frames"])]
    if upsample is not None:
        w, b = upsample
        initializers += [numpy_helper.from_array(np.ascontiguousarray(w.T, np.float32), "upsample_w"),
                         numpy_helper.from_array(b.astype(np.float32), "upsample_b"),
                         numpy_helper.from_array(np.array([-1, width], np.int64), "frame_shape")]
        frames = [node("MatMul", ["speech", "upsample_w"], ["upsampled_mm"]),
                  node("Add", ["upsampled_mm", "upsample_b"], ["upsampled"]),
                  node("Reshape", ["upsampled", "frame_shape"], ["ctc_frames"])]
    graph = helper.make_graph(
        frames +
        [node("MatMul", ["ctc_frames", "weights"], ["logits"]),
         node("LogSoftmax", ["logits"], ["log_probs"], axis=-1),
         node("ReduceMax", ["log_probs"], ["best"], axes=[0], keepdims=0),
         node("Greater", ["best", "floor"], ["plausible"]),
         node("Or", ["plausible", "blank"], ["keep"]),
         node("NonZero", ["keep"], ["kept_2d"]),
         node("Squeeze", ["kept_2d", "axis0"], ["kept"]),
         node("Gather", ["log_probs", "kept"], ["frames"], axis=1)],
        "ctc_head",
        [helper.make_tensor_value_info("speech", TensorProto.FLOAT, ["n", width]),
         helper.make_tensor_value_info("weights", TensorProto.FLOAT, [width, n_classes]),
         helper.make_tensor_value_info("floor", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, ["t", n_classes]),
         helper.make_tensor_value_info("kept", TensorProto.INT64, ["k"]),
         helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["t", "k"])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)  # as encoder.onnx
    return model.SerializeToString()


@dataclass(frozen=True)
class CtcPrefix:
    """One hypothesis' CTC state. r_n[t] / r_b[t]: log-probability that frames 0..t emit the prefix
    ending in a non-blank / a blank; psi: log-probability of every alignment that starts with the
    prefix (the prefix score); last: the class of the prefix's last token (0: the empty prefix)."""

    psi: float
    r_n: np.ndarray = field(repr=False)
    r_b: np.ndarray = field(repr=False)
    last: int = 0

    @functools.cached_property
    def reach(self) -> np.ndarray:
        """[T] log-probability that frames 0..t emit the prefix (either ending); asked for several times
        per step, computed once."""
        return np.logaddexp(self.r_n, self.r_b)


class CtcPrefixScorer:
    """CTC prefix scores of a segment's hypotheses, extended one token at a time (the state lives in
    CtcPrefix values, so a beam's hypotheses share one scorer).

    Only the classes some frame finds plausible (above `floor`: 200-8000 of 13k) are kept, the others
    count as `floor` on every frame: a segment's full [T, 13k] matrix would hold ~13 MB while decoded."""

    def __init__(self, kept: np.ndarray, frames: np.ndarray, n_classes: int, class_of: np.ndarray,
                 weight: float, candidates: int, floor: float):
        self.class_of = class_of  # token id -> class (0: none; class 0 is the blank)
        self.weight = weight  # of the CTC score against the LLM's
        self.candidates = candidates  # each hypothesis' top LLM tokens scored
        self.floor = floor
        assert kept[0] == 0, "the blank is always kept"
        self._frames = np.asarray(frames, np.float32)  # [T, kept classes]; float64 once picked
        self._column = np.full(n_classes, -1)
        self._column[kept] = np.arange(len(kept))
        self._cum_blank = np.cumsum(self._frames[:, 0], dtype=np.float64)
        # The blank wins every frame: the head hears no token at all (noise, a click, breath).
        self.hears_nothing = bool((self._frames.argmax(axis=1) == 0).all())

    @classmethod
    def from_log_probs(cls, log_probs: np.ndarray, class_of: np.ndarray, weight: float, candidates: int,
                       floor: float = -10.0) -> "CtcPrefixScorer":
        """From a full [T, classes] matrix (CtcHead.scorer picks the columns inside ONNX Runtime)."""
        kept = np.union1d([0], np.flatnonzero(log_probs.max(axis=0) > floor))
        return cls(kept, log_probs[:, kept], log_probs.shape[1], class_of, weight, candidates, floor)

    def initial(self) -> CtcPrefix:
        """The empty prefix: blanks only."""
        return CtcPrefix(0.0, np.full(len(self._frames), NEG_INF), self._cum_blank.copy())

    def _class_frames(self, classes: np.ndarray, first: int = 0) -> np.ndarray:
        """[K, T - first] log-probabilities of each class on each frame from `first` on."""
        columns = self._column[classes]
        x = np.full((len(classes), len(self._frames) - first), self.floor, np.float64)
        x[columns >= 0] = self._frames[first:, columns[columns >= 0]].T
        return x

    def emissions(self, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[T] blank and [K, T] class log-probabilities per frame: what a forced alignment reads."""
        return self._frames[:, 0].astype(np.float64), self._class_frames(classes)

    @property
    def n_frames(self) -> int:
        return len(self._frames)

    def _first_frame(self, prefix: CtcPrefix) -> int:
        """The first frame where the prefix's reach (the log-probability that frames 0..t emit it) is
        within REACH_WINDOW of its best: paths through earlier frames are below float64's precision
        against those through that best, so an extension is computed from there on (a hypothesis late
        in a segment: a fraction of its frames)."""
        if prefix.last == 0 or len(self._frames) < 3:
            return 0
        reach = prefix.reach
        return min(int(np.argmax(reach > reach.max() - REACH_WINDOW)), len(self._frames) - 2)

    def extend(self, prefix: CtcPrefix, classes: np.ndarray) -> list[CtcPrefix]:
        """The prefix extended by each class in `classes` [K] (all non-blank)."""
        first = self._first_frame(prefix)
        x = self._class_frames(classes, first)
        k, t = x.shape
        phi = np.broadcast_to(prefix.reach[first:], (k, t)).copy()
        phi[classes == prefix.last] = prefix.r_b[first:]  # a repeated class needs a blank in between
        start = np.full((k, 1), 0.0 if prefix.last == 0 else NEG_INF)
        # r_n[t] = logaddexp(r_n[t-1], phi[t-1]) + x[t], unrolled with cumulative sums
        cum_x = np.cumsum(x, axis=1)
        r_n = np.full((k, len(self._frames)), NEG_INF)
        r_n[:, first:] = cum_x + np.logaddexp.accumulate(
            np.concatenate([start, phi[:, :-1] - cum_x[:, :-1]], axis=1), axis=1)
        # r_b[t] = logaddexp(r_b[t-1], r_n[t-1]) + blank[t]
        cum_b = self._cum_blank[None, first:]
        into_b = np.concatenate([np.full((k, 1), NEG_INF), r_n[:, first:-1] - cum_b[:, :-1]], axis=1)
        r_b = np.full((k, len(self._frames)), NEG_INF)
        r_b[:, first:] = cum_b + np.logaddexp.accumulate(into_b, axis=1)
        psi = np.logaddexp(start[:, 0] + x[:, 0], np.logaddexp.reduce(phi[:, :-1] + x[:, 1:], axis=1))
        return [CtcPrefix(float(psi[j]), r_n[j], r_b[j], int(classes[j])) for j in range(k)]

    @functools.cached_property
    def _block_best(self) -> np.ndarray:
        """[blocks, kept classes]: each class's best frame in each block of BOUND_BLOCK frames (made when
        first asked: only a search with context words needs it)."""
        blocks = -(-len(self._frames) // BOUND_BLOCK)
        padded = np.full((blocks * BOUND_BLOCK, self._frames.shape[1]), NEG_INF, np.float32)
        padded[:len(self._frames)] = self._frames
        return padded.reshape(blocks, BOUND_BLOCK, -1).max(axis=1).astype(np.float64)

    def score_bounds(self, prefix: CtcPrefix, classes: np.ndarray) -> np.ndarray:
        """[K] upper bounds of what extend() would score, for a few operations per class: psi is a
        logsumexp over frames t of (what the prefix reaches by t-1) + x[t], and within each block of
        frames x is at most its best there. A candidate whose bound falls short of a threshold need
        not be extended (the prefix's reach is near its own frames: a word heard elsewhere is out)."""
        columns = self._column[classes]
        reach = np.full(len(self._block_best) * BOUND_BLOCK, NEG_INF)
        reach[0] = 0.0 if prefix.last == 0 else NEG_INF  # frame 0 extends the empty prefix only
        reach[1:len(self._frames)] = prefix.reach[:-1]
        with np.errstate(invalid="ignore"):  # blocks the prefix cannot reach: -inf throughout
            reach = np.logaddexp.reduce(reach.reshape(-1, BOUND_BLOCK), axis=1)
            best = np.where(columns >= 0, self._block_best[:, np.maximum(columns, 0)], self.floor)
            return np.logaddexp.reduce(best + reach[:, None], axis=0)

    @staticmethod
    def end_score(prefix: CtcPrefix) -> float:
        """log P(the whole audio says exactly the prefix)."""
        return float(np.logaddexp(prefix.r_n[-1], prefix.r_b[-1]))
