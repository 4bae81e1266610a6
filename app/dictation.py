"""Live dictation: microphone blocks -> VAD -> partial decodes while speaking, a final when speech ends.

One worker thread does VAD and decoding in order; the audio callback only queues. Finals are always
decoded; a partial is decoded only when the backlog is short, so falling behind drops partials first.

The words two successive partials agree on (all but the newest) are kept: later partials and the final
begin with them instead of searching them again, so the final decodes only the utterance's last words
(the LocalAgreement policy of Macháček et al. 2023, "Turning Whisper into Real-Time Transcription").
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol, Sequence, Union

import numpy as np

from voxprompt.audio import SAMPLE_RATE
from voxprompt.journal import Journal
from voxprompt.llm import release_openmp_threads
from voxprompt.transcriber import Segment, Transcriber
from voxprompt.vad import SpeechSegment, VadOptions, VadSegmenter
from voxprompt.words import Word

if TYPE_CHECKING:
    from voxprompt.microphone import InputDevice, Microphone


@dataclass(frozen=True)
class Partial:
    """The open utterance as decoded so far (it may still change)."""

    text: str
    start: float  # seconds since the stream began
    end: float
    latency_ms: float  # decode time

    def to_json(self) -> dict:
        return _json("partial", self)


@dataclass(frozen=True)
class Final:
    """A committed line (journaled before this event is sent)."""

    text: str
    start: float
    end: float
    latency_ms: float  # from the end of speech to the text
    words: tuple[Word, ...] = ()  # timed, when the model has a CTC head (finals only: partials skip the work)

    def to_json(self) -> dict:
        return {**_json("final", self), "words": [w.to_json() for w in self.words]}


@dataclass(frozen=True)
class Level:
    dbfs: float  # RMS of the latest audio
    speaking: bool


@dataclass(frozen=True)
class Failed:
    """The engine stopped on an error (a vanished device, a decode error); what was heard is committed."""

    message: str


@dataclass(frozen=True)
class Stopped:
    """The engine's last event."""


@dataclass(frozen=True)
class AdaptersChanged:
    """Domain adapters switched between two utterances (the audio meanwhile waits in the queue)."""

    names: tuple[str, ...]  # now applied; () for none
    switch_ms: float


DictationEvent = Union[Partial, Final, Level, Failed, Stopped, AdaptersChanged]


def _json(kind: str, event: Partial | Final) -> dict:
    return {"type": kind, "text": event.text, "start": round(event.start, 3), "end": round(event.end, 3),
            "latency_ms": round(event.latency_ms, 1)}


@dataclass(frozen=True)
class DictationOptions:
    partial_every_s: float = 0.5  # re-decode the growing segment this often
    max_backlog_s: float = 0.6  # skip partials while more audio than this waits to be processed
    level_every_s: float = 0.1
    # Dictation ends utterances sooner than file transcription: a short hang-over (a pause this long ends
    # the line, and no final comes sooner: it bounds the latency from below), a short kept tail; the final
    # is decoded while the hang-over runs (closing_candidate). 250 against 300 ms (session 23, replays of
    # 50 real_dev / 50 game_dev clips): 14.3 / 15.7 % against 14.3 / 16.0 %, one more clip split in each.
    vad: VadOptions = VadOptions(hangover_ms=250, tail_ms=150, max_segment_s=15.0, candidate_after_ms=30)
    partial_max_silence_ms: int = 90  # no partial once the speaker seems to stop: the final needs the decoder
    partial_beam: int = 4  # partials are searched as finals are: the words two of them agree on are kept, and
    # greedy partials agree on errors the final's beam would fix (given words, they cost what greedy ones did)
    final_beam: int = 0  # hypotheses a final keeps (0: the LLM's beam size). 2 saves ~80 ms a final and
    # costs ~0.5 point on game_dev replays (clips 0-130: 22.7 / 26.6 % against 23.3 / 25.2 %, session 17)
    keep_agreed: bool = True  # words two partials agree on are given to the next decodes, not searched again


def agreed_tokens(previous: Sequence[int], latest: Sequence[int], starts_word: Callable[[int], bool]) -> list[int]:
    """The words two successive decodes of a growing utterance agree on, less the latest decode's last
    word (it sits at the edge of the audio heard so far): whole words only, as tokens. (One decode's
    words less its last one or two, unconfirmed, cost 8 and 3 points on game_dev: session 17.)"""
    n = 0
    while n < min(len(previous), len(latest)) and previous[n] == latest[n]:
        n += 1
    last_word = max((i for i, t in enumerate(latest) if i == 0 or starts_word(t)), default=0)
    n = min(n, last_word)

    def boundary(tokens: Sequence[int], i: int) -> bool:
        return i == len(tokens) or starts_word(tokens[i])

    while n > 0 and not (boundary(previous, n) and boundary(latest, n)):
        n -= 1
    return list(latest[:n])


class AudioSource(Protocol):
    def read(self, timeout: float = 0.1) -> np.ndarray | None: ...
    def backlog_seconds(self) -> float: ...


class DictationEngine:
    def __init__(self, transcriber: Transcriber, source: AudioSource, on_event: Callable[[DictationEvent], None],
                 options: DictationOptions = DictationOptions(), journal: Journal | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.transcriber, self.source, self.on_event = transcriber, source, on_event
        self.options, self.journal = options, journal
        self._clock = clock  # seconds; a replayed recording passes its virtual clock, so latencies are live ones
        self.vad = VadSegmenter(transcriber.fit_vad(options.vad))
        self.paused = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._samples = 0  # 16 kHz samples consumed since the start
        self._arrivals: list[tuple[int, float]] = []  # (sample count, wall time) for latency
        self._last_partial_at = 0
        self._speculative: tuple[tuple, Segment] | None = None  # (segment start, framed end, given) -> result
        self._agreed: list[int] = []  # the open utterance's agreed tokens ...
        self._agreed_in: tuple[int, int] = (-1, 0)  # ... within this stretch of it: (start, end) samples
        self._previous_partial: tuple[int, list[int]] | None = None  # (segment start, tokens)
        self._closed: list[SpeechSegment] = []  # closed by the VAD, awaiting their finals
        self._last_level_at = 0
        self._draining = False
        self._adapters_wanted: tuple | None = None  # set by another thread, applied by the worker
        self.finals: list[Final] = []

    # -- control --------------------------------------------------------------------------------
    def start(self) -> "DictationEngine":
        release_openmp_threads()  # the decoder moves to the worker thread; see release_openmp_threads
        self._thread = threading.Thread(target=self._run, name="voxprompt-dictation", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish: the open utterance is decoded as a final, then the worker ends."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def switch_adapters(self, chosen: tuple) -> None:
        """Apply these domain adapters (AdapterChoice) from the next utterance on: the worker switches them
        between decodes, never inside one; the microphone keeps queuing meanwhile, so no audio is lost."""
        self._adapters_wanted = tuple(chosen)

    def replay(self) -> list[Final]:
        """Run over a source that ends (a recording), in this thread, as the worker would: every block,
        then the open utterance's final. For measuring dictation on recordings: the source's read()
        returns None only at its end."""
        while (block := self.source.read(timeout=1.0)) is not None:
            self._consume(block)
        for segment in self._closing():
            self._final(segment)
        return self.finals

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _apply_adapters(self) -> None:
        chosen, self._adapters_wanted = self._adapters_wanted, None
        t0 = time.monotonic()
        self.transcriber.use_adapters(chosen)
        self._speculative = None  # decoded under the previous adapters
        self.on_event(AdaptersChanged(tuple(a.name for a in chosen), (time.monotonic() - t0) * 1e3))

    # -- worker ---------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._adapters_wanted is not None and not self.vad.in_speech:
                    self._apply_adapters()  # between utterances: an open one keeps the adapters it began with
                block = self.source.read(timeout=0.05)
                if block is None or len(block) == 0:
                    continue
                if self.paused.is_set():
                    continue
                self._consume(block)
            self._drain()
            for segment in self._closing():
                self._final(segment)
        except Exception as exc:  # a vanished device, a decode error: say it, keep what we have
            for segment in self._closing():
                try:
                    self._final(segment)
                except Exception:
                    pass
            self.on_event(Failed(str(exc)))
        finally:
            self.on_event(Stopped())

    def _closing(self) -> list[SpeechSegment]:
        """At the end: segments closed but not yet decoded, and the open one."""
        segments, self._closed = [*self._closed, *self.vad.flush()], []
        return segments

    def _drain(self) -> None:
        """At stop: the audio already captured goes through the VAD (no partials), so the words spoken just
        before Ctrl-C are in the last final."""
        if self.paused.is_set():
            return
        self._draining = True
        queued = self.source.backlog_seconds() * SAMPLE_RATE  # what was captured when stop came, no more
        while queued > 0 and (block := self.source.read(timeout=0.0)) is not None:
            queued -= len(block)
            if len(block):
                self._consume(block)

    def _consume(self, block: np.ndarray) -> None:
        self._ingest(block)
        self._react()

    def _ingest(self, block: np.ndarray) -> None:
        """A block through the VAD (no decoding): segments it closes wait in `_closed` for their finals."""
        self._samples += len(block)
        # when it arrived: the audio queued behind it came after it (the worker may have been decoding)
        self._arrivals.append((self._samples, self._clock() - self.source.backlog_seconds()))
        if len(self._arrivals) > 4000:
            self._arrivals = self._arrivals[-2000:]
        if self._samples - self._last_level_at >= self.options.level_every_s * SAMPLE_RATE:
            self._last_level_at = self._samples
            rms = float(np.sqrt(np.mean(block**2)) + 1e-9)
            self.on_event(Level(20 * float(np.log10(rms)), self.vad.in_speech))
        self._closed.extend(self.vad.push(block))

    def _take_arrived(self) -> None:
        """Between decoding steps: the audio that arrived meanwhile goes through the VAD."""
        while not self.paused.is_set() and (block := self.source.read(timeout=0.0)) is not None:
            if len(block):
                self._ingest(block)

    def _react(self) -> None:
        """Finals for closed segments; then the open one's closing candidate, or a partial."""
        o = self.options
        while self._closed:
            self._final(self._closed.pop(0))
        if self._draining:
            return  # stopping: finals only
        candidate = self.vad.closing_candidate()
        if not self.vad.in_speech:
            self._last_partial_at = self._samples
        elif candidate is not None:
            given = self._given_for(candidate)
            key = (candidate.start, candidate.framed_end, tuple(given))
            if self._speculative is None or self._speculative[0] != key:
                result = self.transcriber.transcribe_segment(
                    candidate, word_timestamps=True, given=given, beam=self.options.final_beam,
                    keep_going=self._candidate_holds(candidate))
                self._speculative = (key, result) if result is not None else None
        elif (self._samples - self._last_partial_at >= o.partial_every_s * SAMPLE_RATE
              and self.vad.trailing_silence_ms <= o.partial_max_silence_ms
              and self.source.backlog_seconds() <= o.max_backlog_s):
            self._last_partial_at = self._samples
            self._partial(self.vad.current())
        while self._closed:
            self._final(self._closed.pop(0))

    def _candidate_holds(self, candidate: SpeechSegment) -> Callable[[], bool]:
        """While a closing candidate decodes: go on unless the speaker resumed (the candidate changed)."""
        def keep_going() -> bool:
            self._take_arrived()
            if self._closed or self._stop.is_set():
                return True  # it closed as the candidate (or a later one did): the final wants it
            return self.vad.candidate_end == candidate.framed_end
        return keep_going

    def _partial_wanted(self) -> bool:
        """While a partial decodes: stop it once the speaker has paused (the final wants the decoder) or
        dictation stops."""
        self._take_arrived()
        return not (self._stop.is_set() or self._closed or self.vad.candidate_end is not None)

    def _partial(self, segment: SpeechSegment) -> None:
        t0 = self._clock()
        result = self.transcriber.transcribe_segment(segment, beam=self.options.partial_beam,
                                                     given=self._given_for(segment), keep_going=self._partial_wanted)
        if result is None:
            return
        self.on_event(Partial(result.text, result.start, result.end, (self._clock() - t0) * 1e3))
        if not self.options.keep_agreed:
            return
        previous, self._previous_partial = self._previous_partial, (segment.start, result.tokens)
        if previous is not None and previous[0] == segment.start:
            agreed = agreed_tokens(previous[1], result.tokens, self._starts_word)
            if len(agreed) > len(self._agreed):
                self._agreed, self._agreed_in = agreed, (segment.start, segment.end)

    def _starts_word(self, token: int) -> bool:
        return self.transcriber.llm.piece(token).startswith(b" ")

    def _given_for(self, segment: SpeechSegment) -> list[int]:
        """The agreed tokens, when they were heard in this segment's audio (a segment that the VAD split
        off a long utterance may end before some of them)."""
        start, end = self._agreed_in
        return self._agreed if segment.start == start and segment.end >= end else []

    def _arrival_time(self, sample: int) -> float:
        for count, when in self._arrivals:
            if count >= sample:
                return when
        return self._clock()

    def _final(self, segment: SpeechSegment) -> None:
        speculative, self._speculative = self._speculative, None
        given = self._given_for(segment)
        self._agreed, self._agreed_in, self._previous_partial = [], (-1, 0), None  # the utterance ends here
        if speculative is not None and speculative[0] == (segment.start, segment.framed_end, tuple(given)):
            result = speculative[1]  # the same speech, decoded while the hang-over ran out
        else:
            result = self.transcriber.transcribe_segment(segment, word_timestamps=True, given=given,
                                                         beam=self.options.final_beam)
        # End of speech: the last voiced audio, before the kept tail of silence.
        speech_end = max(segment.start, segment.end - self.vad.options.tail_ms * SAMPLE_RATE // 1000)
        latency = (self._clock() - self._arrival_time(speech_end)) * 1e3
        event = Final(result.text, result.start, result.end, latency, result.words)
        if result.text and self.journal is not None:
            self.journal.append(result.text)
        self.finals.append(event)
        self.on_event(event)


class LiveDictation:
    """A microphone, its engine and the journal, started and stopped together: the app and `--no-ui`
    both run dictation through this."""

    def __init__(self, transcriber: Transcriber, device: "InputDevice", journal: Journal | None,
                 on_event: Callable[[DictationEvent], None], options: DictationOptions = DictationOptions()):
        self.transcriber, self.device, self.journal = transcriber, device, journal
        self.on_event, self.options = on_event, options
        self.microphone: "Microphone | None" = None
        self.engine: DictationEngine | None = None

    def start(self) -> "LiveDictation":
        """Open the device (DeviceError if it cannot be) and start listening."""
        from voxprompt.microphone import Microphone

        self.microphone = Microphone(self.device).start()
        self.engine = DictationEngine(self.transcriber, self.microphone, self.on_event, self.options,
                                      self.journal).start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Commit the open utterance (what was captured before this call), then close the device."""
        if self.engine is not None:
            self.engine.stop(timeout)
        if self.microphone is not None:
            self.microphone.stop()
        self.engine = self.microphone = None
