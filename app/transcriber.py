"""The pipeline: audio -> VAD segments -> encoder.onnx -> speech vectors -> llama.cpp -> Segment results.

Transcriber.decode is the one decoding path; files.py orders its results by file, dictation.py takes
one segment at a time."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Hashable, Iterable, Iterator, Sequence

import numpy as np
from voxprompt.adapters import AdapterChoice, folded_llm, resolve_adapter
from voxprompt.audio import SAMPLE_RATE
from voxprompt.biasing import WordBias
from voxprompt.ctc import CtcHead, CtcPrefixScorer, CtcShift, spelling_tokens
from voxprompt.decoding import Request, TokenPiece, decode_many
from voxprompt.encoder import EncoderOptions, SpeechEncoder
from voxprompt.llm import LlmOptions, SpeechPromptLLM
from voxprompt.manifest import Manifest, ModelError, load_manifest
from voxprompt.memory import return_large_blocks
from voxprompt.vad import SpeechSegment, VadOptions, VadSegmenter
from voxprompt.words import FrameClock, Word, fit_to_sound, word_timings


@dataclass(frozen=True)
class Timing:
    encode_ms: float
    prompt_ms: float  # prompt decode up to the first new token
    generate_ms: float  # the remaining tokens
    n_tokens: int

    @property
    def tokens_per_second(self) -> float:
        return self.n_tokens / (self.generate_ms / 1000) if self.generate_ms > 0 else 0.0


@dataclass(frozen=True)
class Segment:
    """One transcribed stretch of speech; times are seconds in the original audio."""

    start: float
    end: float
    text: str
    tokens: list[int] = field(repr=False)
    timing: Timing = field(repr=False, compare=False)
    words: tuple[Word, ...] = field(default=(), repr=False)  # asked for (word_timestamps), from the CTC head


TokenCallback = Callable[[str], None]


def fit_vad(manifest: Manifest, options: VadOptions) -> VadOptions:
    """VAD options whose longest segment (plus its pre-roll and tail) fits the model's encoder."""
    limit = manifest.encoder.max_seconds - 1.0
    return replace(options, max_segment_s=limit) if options.max_segment_s > limit else options


class Transcriber:
    """Loads a model directory once; transcribes segments, files and streams with it."""

    @classmethod
    def open(cls, model_dir: str | Path, device: str = "auto", threads: int = 0, parallel: int = 1,
             beam: int = LlmOptions.beam_size, adapters: Sequence[str] = (), context: str = "",
             fold_adapters: bool = False, log: Callable[[str], None] | None = None) -> "Transcriber":
        """As the commands open it: the encoder and the LLM on one device ("cpu": no GPU offload), with
        the same threads (0: one per physical core); `adapters` as --adapter gives them (NAME[:SCALE])."""
        return cls(model_dir, EncoderOptions(device=device, n_threads=threads),
                   LlmOptions(n_threads=threads, gpu_layers=0 if device == "cpu" else -1, n_parallel=parallel,
                              beam_size=beam), adapters=adapters, context=context, fold_adapters=fold_adapters,
                   log=log)

    def __init__(self, model_dir: str | Path, encoder_options: EncoderOptions = EncoderOptions(),
                 llm_options: LlmOptions = LlmOptions(), vad_options: VadOptions = VadOptions(),
                 verify: bool = True, adapters: Sequence[str | AdapterChoice] = (), context: str = "",
                 fold_adapters: bool = False, log: Callable[[str], None] | None = None):
        """`fold_adapters`: fold the adapters into a cached copy of the LLM's weights (no cost per token,
        a few seconds the first time; they cannot be switched then) instead of applying them at load."""
        return_large_blocks()  # before the first segment: otherwise freed buffers stay in the heap
        model_dir = Path(model_dir)
        self.manifest: Manifest = load_manifest(model_dir, verify=verify)
        m = self.manifest
        self.model_adapter = (model_dir / m.llm.adapter, 1.0) if m.llm.adapter else None
        self.adapters = tuple(a if isinstance(a, AdapterChoice) else resolve_adapter(a, m) for a in adapters)
        m.prompt.prefix_for(context)  # a model with no place for a context is refused before loading
        self.encoder = SpeechEncoder(model_dir / m.encoder.file, m.encoder, encoder_options)
        self.vad_options = self.fit_vad(vad_options)
        if llm_options.n_ctx == 0:
            llm_options = replace(llm_options, n_ctx=self.cells_per_segment())
        llm_file, llm_adapters = model_dir / m.llm.file, self._llm_adapters(self.adapters)
        self.folded = fold_adapters and any(a.scale for a in self.adapters)
        if self.folded:
            llm_file, llm_adapters = folded_llm(llm_file, llm_adapters, log), []
        self.llm = SpeechPromptLLM(llm_file, m.prompt, llm_options, llm_adapters, context=context)
        if not (self.encoder.width == self.llm.width == m.llm.width):
            raise ModelError(f"{model_dir}: encoder gives {self.encoder.width}-wide vectors, the LLM reads "
                             f"{self.llm.width} (manifest: {m.llm.width}); re-export the model")
        self.model_dir, self.encoder_options, self.context = model_dir, encoder_options, context
        self.ctc = self._ctc_head()
        self.bias = self._word_bias()
        if self.ctc is not None and self.ctc.width != self.llm.width:
            raise ModelError(f"{model_dir}: the CTC head is {self.ctc.width} wide, the LLM {self.llm.width}; "
                             "re-export the model")

    def _continues_word(self, token: int) -> bool:
        return self.llm.piece(token)[:1].isalnum()

    def _llm_adapters(self, chosen: Sequence[AdapterChoice]) -> list[tuple[Path, float]]:
        own = [self.model_adapter] if self.model_adapter else []
        return own + [a.as_llm_adapter() for a in chosen if a.scale]

    def _ctc_head(self) -> CtcHead | None:
        """The CTC head, with classes for the words of the context and of the adapters in use: decoding
        proposes only tokens the head can score, and its own are those of its training text."""
        spec = self.manifest.ctc
        if spec is None:
            return None
        rows = self.model_dir / spec.token_rows if spec.token_rows else None
        return CtcHead(self.model_dir / spec.file, self.llm.n_vocab, self.encoder_options, rows,
                       spelling_tokens(self.llm.tokenize, self._spelled_words()),
                       [(CtcShift.load(path), scale) for path, scale in self._ctc_shifts()])

    def _ctc_shifts(self) -> tuple[tuple[Path, float], ...]:
        """The applied adapters' changes to the CTC head (adapter-ctc.npz), each with its scale."""
        return tuple((a.ctc_shift, a.scale) for a in self.adapters if a.scale and a.ctc_shift)

    def _ctc_inputs(self) -> tuple:
        """What the CTC head is built from beyond the model: the words to spell, the adapters' shifts."""
        return self._spelled_words(), self._ctc_shifts()

    def _spelled_words(self) -> str:
        return " ".join([self.context, *(" ".join(a.vocabulary) for a in self.adapters if a.scale)])

    def _word_bias(self) -> WordBias | None:
        """The words favoured in the search: the context's and the domain terms of the adapters in use."""
        text = " ".join([self.context, *(" ".join(a.terms) for a in self.adapters if a.scale)]).strip()
        return WordBias.for_text(text, self.llm.tokenize, self._continues_word) if text else None

    def use_adapters(self, chosen: Sequence[AdapterChoice]) -> None:
        """Switch domain adapters between segments (the base model stays loaded; files are read once)."""
        if self.folded:
            raise ValueError("these adapters are folded into the loaded weights; open with fold_adapters=False "
                             "to switch them")
        before = self._ctc_inputs()
        self.llm.set_adapters(self._llm_adapters(chosen))
        self.adapters = tuple(chosen)
        if self.ctc is not None and self._ctc_inputs() != before:
            self.ctc = self._ctc_head()
        self.bias = self._word_bias()

    def request(self, key: Hashable, segment: SpeechSegment, beam: int = 0, given: Sequence[int] = ()) -> Request:
        """A segment made ready to decode: its framed audio encoded, the CTC head's scorer over it.
        `beam`: hypotheses kept (0: the LLM's beam size); `given`: tokens its transcript begins with."""
        speech = self.encoder(segment.framed())
        return Request(key, speech, self.manifest.token_bound(segment.duration), self.scorer(speech), beam,
                       tuple(given), self.bias)

    def scorer(self, speech: np.ndarray) -> CtcPrefixScorer | None:
        """Joint CTC/LLM scoring for one segment's decoding, when the model has a CTC head."""
        if self.ctc is None:
            return None
        return self.ctc.scorer(speech, self.manifest.ctc.weight, self.manifest.ctc.candidates)

    def fit_vad(self, options: VadOptions) -> VadOptions:
        return fit_vad(self.manifest, options)

    def cells_per_segment(self) -> int:
        """KV cells the longest VAD segment needs beyond the prompt's own tokens: its speech vectors and
        its token bound. The KV cache is most of what a seat costs."""
        seconds = self.vad_options.max_segment_s + 1.0  # pre-roll and tail come on top of the limit
        return math.ceil(seconds * self.manifest.encoder.vectors_per_second) + self.manifest.token_bound(seconds)

    def describe_devices(self) -> str:
        llm = "GPU offload" if self.llm.gpu_offload else "CPU"
        return f"encoder: ONNX Runtime on {self.encoder.device.upper()}; LLM: llama.cpp on {llm}"

    def decode(self, segments: Iterable[tuple[Hashable, SpeechSegment]], word_timestamps: bool = False,
               beam: int = 0, given: Sequence[int] = (), keep_going: Callable[[], bool] | None = None
               ) -> Iterator[tuple[Hashable, TokenPiece | Segment]]:
        """The one decoding path: (key, segment) pairs in, each one's tokens as they settle and then its
        Segment result, up to the LLM's n_parallel segments in flight. A segment is encoded only when a
        seat is free for it, so memory stays bounded however many come. Files, dictation, `eval` and the
        benchmarks all decode through here. With `word_timestamps`, each Segment carries its timed words
        (3 ms for a 3 s segment, 12 ms for 20 s on 2 cores: not spent where nobody reads them). `given`:
        tokens every transcript begins with, not searched (dictation's agreed words); `keep_going`, asked
        before every decoding step: False ends the decoding there, without results."""
        started: dict[Hashable, tuple[SpeechSegment, Request, float, float]] = {}  # encode ms, admitted at
        first_token: dict[Hashable, float] = {}

        def requests() -> Iterator[Request]:
            for key, segment in segments:
                t0 = time.perf_counter()
                request = self.request(key, segment, beam, given)
                t1 = time.perf_counter()
                started[key] = (segment, request, (t1 - t0) * 1e3, t1)
                yield request

        for key, event in decode_many(self.llm, requests(), keep_going):
            now = time.perf_counter()
            if isinstance(event, TokenPiece):
                first_token.setdefault(key, now)
                yield key, event
                continue
            segment, request, encode_ms, admitted = started.pop(key)
            first = first_token.pop(key, now)
            timing = Timing(encode_ms, (first - admitted) * 1e3, (now - first) * 1e3, len(event.tokens))
            # a repetition loop comes cut to its first copy
            yield key, self.segment_result(segment, event.tokens, timing, request if word_timestamps else None)

    def transcribe_segment(self, segment: SpeechSegment, on_token: TokenCallback | None = None,
                           word_timestamps: bool = False, beam: int = 0, given: Sequence[int] = (),
                           keep_going: Callable[[], bool] | None = None) -> Segment | None:
        """One segment on its own (live dictation); `beam` 1 for a quick greedy look (0: the LLM's beam);
        `given`: tokens its transcript begins with; None when `keep_going` said stop."""
        for _, event in self.decode([(None, segment)], word_timestamps, beam, given, keep_going):
            if isinstance(event, Segment):
                return event
            if on_token is not None and event.text:
                on_token(event.text)
        if keep_going is not None:
            return None
        raise RuntimeError("the decoder ended without a result")

    def segment_result(self, segment: SpeechSegment, tokens: list[int], timing: Timing,
                       timed_by: Request | None = None) -> Segment:
        """The segment's text; its words timed from `timed_by`'s CTC frames when given."""
        text = " ".join(self.llm.detokenize(tokens).split())  # one line: subtitle formats end an entry at a blank line
        if not any(ch.isalnum() for ch in text):
            return Segment(segment.start_s, segment.end_s, "", tokens, timing)  # "...", "--": not a transcript
        words = self.words(segment, tokens, timed_by) if timed_by is not None else ()
        return Segment(segment.start_s, segment.end_s, text, tokens, timing, words)

    def words(self, segment: SpeechSegment, tokens: list[int], request: Request) -> tuple[Word, ...]:
        """The transcript's words timed by the CTC head's alignment (none without a head)."""
        scorer = request.ctc
        if scorer is None or not tokens:
            return ()
        classes = self.ctc.class_of[np.asarray(tokens, np.int64)]
        blank, emissions = scorer.emissions(classes[classes > 0])
        vectors_per_frame = len(request.speech) / scorer.n_frames
        clock = FrameClock(origin=(segment.start - segment.pad_before) / SAMPLE_RATE,
                           frame_s=vectors_per_frame / self.manifest.encoder.vectors_per_second,
                           start=segment.start_s, end=segment.end_s)
        words = word_timings([self.llm.piece(t) for t in tokens], classes, blank, emissions, clock)
        return tuple(fit_to_sound(words, segment.audio, segment.start_s))

    def segments(self, blocks: Iterator[np.ndarray]) -> Iterator[SpeechSegment]:
        """VAD over a stream of 16 kHz blocks; memory stays bounded by the longest segment."""
        vad = VadSegmenter(self.vad_options)
        for block in blocks:
            yield from vad.push(block)
        yield from vad.flush()

    def close(self) -> None:
        self.llm.close()
