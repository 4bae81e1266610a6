"""Voice activity segmentation with webrtcvad: pre-roll, hang-over, and long speech split at a quiet point.

Segments carry their start in the original stream's samples, so times need no mapping back. Every
segment has its pre-roll and tail of quiet around the speech (the model is trained on speech framed by
silence); where the stream has none to give (speech from its first sample, or up to its last), the
segment asks for zeros in their place (`pad_before`, `pad_after`).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from voxprompt.audio import SAMPLE_RATE


@dataclass(frozen=True)
class VadOptions:
    aggressiveness: int = 2  # webrtcvad's 0 (lenient) .. 3 (strict)
    frame_ms: int = 30  # webrtcvad takes 10, 20 or 30 ms frames
    pre_roll_ms: int = 300  # kept before the first voiced frame, so onsets are not clipped
    hangover_ms: int = 600  # this much silence ends a segment
    tail_ms: int = 240  # kept after the last voiced frame, so word endings are not cut
    min_speech_ms: int = 120  # segments with less voiced audio are dropped as clicks
    # Longer speech is split (the encoder takes at most 30 s). At 16 s a framed segment's 107 speech
    # vectors, 114-token bound and the prompt fit the 256 KV cells llama.cpp gives a seat at a time
    # (20 s took 512: +190 MB for 32 seats).
    max_segment_s: float = 16.0
    split_window_s: float = 4.0  # the split goes at the quietest frame within this much of the limit
    # A closing candidate (dictation) is offered after this much silence, zeros standing in for the rest of
    # the tail; None: once the whole kept tail has arrived.
    candidate_after_ms: int | None = None


@dataclass(frozen=True)
class SpeechSegment:
    start: int  # first sample, counted from the start of the stream
    audio: np.ndarray  # 16 kHz mono float32
    pad_before: int = 0  # samples of silence to put before the audio for the encoder (missing pre-roll)
    pad_after: int = 0  # and after it (missing tail)

    def framed(self) -> np.ndarray:
        """The audio with its missing pre-roll and tail as zeros: what the encoder reads."""
        if not (self.pad_before or self.pad_after):
            return self.audio
        return np.pad(self.audio, (self.pad_before, self.pad_after))

    @property
    def end(self) -> int:
        return self.start + len(self.audio)

    @property
    def framed_end(self) -> int:
        """Where the framed audio ends (the zeros asked for after it included), in stream samples."""
        return self.end + self.pad_after

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.end / SAMPLE_RATE

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE


class _WebRtcVad:
    """webrtcvad's C extension, used directly: the `webrtcvad` module itself imports pkg_resources
    only to read its version, and setuptools >= 81 no longer ships pkg_resources."""

    def __init__(self, mode: int):
        import _webrtcvad

        self._lib = _webrtcvad
        self._vad = _webrtcvad.create()
        _webrtcvad.init(self._vad)
        _webrtcvad.set_mode(self._vad, mode)

    def is_speech(self, pcm16: bytes, sample_rate: int) -> bool:
        return self._lib.process(self._vad, sample_rate, pcm16, len(pcm16) // 2)


class VadSegmenter:
    """Feed audio of any block size with push(); completed segments come back as they close."""

    def __init__(self, options: VadOptions = VadOptions()):
        self.options = options
        self._vad = _WebRtcVad(options.aggressiveness)
        self.frame = SAMPLE_RATE * options.frame_ms // 1000
        ms = lambda v: max(1, v // options.frame_ms)
        self._pre_roll = ms(options.pre_roll_ms)
        self._hangover = ms(options.hangover_ms)
        self._tail = ms(options.tail_ms)
        after = options.tail_ms if options.candidate_after_ms is None else options.candidate_after_ms
        self._candidate_after = min(self._tail, ms(after))
        self._min_voiced = ms(options.min_speech_ms)
        self._max_frames = int(options.max_segment_s * 1000) // options.frame_ms
        self._split_window = int(options.split_window_s * 1000) // options.frame_ms
        self._pending = np.zeros(0, np.float32)
        self._frames_seen = 0
        self._history: deque[np.ndarray] = deque(maxlen=self._pre_roll)
        self._frames: list[np.ndarray] = []  # the open segment
        self._energy: list[float] = []
        self._voiced_at: list[bool] = []  # per frame of the open segment
        self._start_frame = 0
        self._last_voiced = -1  # index into _frames
        self._voiced = 0

    @property
    def in_speech(self) -> bool:
        return bool(self._frames)

    def current(self) -> SpeechSegment | None:
        """The open segment so far (for partial results), or None during silence."""
        if not self._frames:
            return None
        return self._segment(len(self._frames))

    @property
    def trailing_silence_ms(self) -> int:
        """How long the open segment has been silent (0 while voiced or when no segment is open)."""
        return (len(self._frames) - 1 - self._last_voiced) * self.options.frame_ms if self._frames else 0

    def closing_candidate(self) -> SpeechSegment | None:
        """The segment as it will close if no speech follows, once `candidate_after_ms` of silence has
        arrived (zeros for the part of the kept tail still to come): a dictation engine decodes it while
        the hang-over runs out, so the final is ready when it does. Its `framed_end` is `candidate_end`."""
        if self.candidate_end is None:
            return None
        return self._segment(min(len(self._frames), self._last_voiced + 1 + self._tail))

    @property
    def candidate_end(self) -> int | None:
        """Where the closing candidate's framed audio ends (samples from the stream's start), without
        building it: None while there is none. Cheap enough to ask between decoding steps."""
        if not self._frames or self._voiced < self._min_voiced:
            return None
        if len(self._frames) - 1 - self._last_voiced < self._candidate_after:
            return None
        return (self._start_frame + self._last_voiced + 1 + self._tail) * self.frame

    def push(self, pcm: np.ndarray) -> list[SpeechSegment]:
        pcm = np.concatenate([self._pending, np.asarray(pcm, np.float32)])
        n = len(pcm) // self.frame
        self._pending = pcm[n * self.frame:]
        closed: list[SpeechSegment] = []
        for i in range(n):
            segment = self._step(pcm[i * self.frame: (i + 1) * self.frame])
            if segment is not None:
                closed.append(segment)
        return closed

    def flush(self) -> list[SpeechSegment]:
        """End of stream: close the open segment, the partial last frame included."""
        if self._frames and len(self._pending):
            self._frames.append(self._pending)
            self._energy.append(0.0)
            self._voiced_at.append(False)
        self._pending = np.zeros(0, np.float32)
        segment = self._close(len(self._frames))
        return [segment] if segment is not None else []

    def _step(self, frame: np.ndarray) -> SpeechSegment | None:
        index = self._frames_seen
        self._frames_seen += 1
        pcm16 = (np.clip(frame, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        voiced = self._vad.is_speech(pcm16, SAMPLE_RATE)
        if not self._frames:
            if not voiced:
                self._history.append(frame)
                return None
            self._frames = list(self._history)  # pre-roll
            self._energy = [0.0] * len(self._frames)
            self._voiced_at = [False] * len(self._frames)
            self._start_frame = index - len(self._frames)
            self._history.clear()
            self._voiced, self._last_voiced = 0, -1
        self._frames.append(frame)
        self._energy.append(float(np.mean(frame * frame)))
        self._voiced_at.append(voiced)
        if voiced:
            self._voiced += 1
            self._last_voiced = len(self._frames) - 1
        if len(self._frames) - 1 - self._last_voiced >= self._hangover:
            return self._close(min(len(self._frames), self._last_voiced + 1 + self._tail))
        if len(self._frames) >= self._max_frames:
            return self._split()
        return None

    def _segment(self, n_frames: int) -> SpeechSegment:
        """The open segment's first n_frames, with zeros asked for where its pre-roll or tail is short."""
        voiced = [i for i in range(n_frames) if self._voiced_at[i]]
        lead, trail = (voiced[0], n_frames - 1 - voiced[-1]) if voiced else (self._pre_roll, self._tail)
        return SpeechSegment(self._start_frame * self.frame, np.concatenate(self._frames[:n_frames]),
                             max(0, self._pre_roll - lead) * self.frame, max(0, self._tail - trail) * self.frame)

    def _close(self, n_frames: int) -> SpeechSegment | None:
        segment = self._segment(n_frames) if n_frames and self._voiced >= self._min_voiced else None
        # What follows the kept tail is silence: it becomes the next segment's pre-roll.
        self._history.extend(self._frames[n_frames:])
        self._frames, self._energy, self._voiced_at, self._voiced, self._last_voiced = [], [], [], 0, -1
        return segment

    def _split(self) -> SpeechSegment:
        """Cut a too-long segment at its quietest frame near the end; the rest stays open."""
        lo = max(1, len(self._frames) - self._split_window)
        cut = lo + int(np.argmin(self._energy[lo:]))
        head = self._segment(cut)
        self._frames, self._energy, self._voiced_at = self._frames[cut:], self._energy[cut:], self._voiced_at[cut:]
        self._start_frame += cut
        self._last_voiced = max(-1, self._last_voiced - cut)
        self._voiced = max(1, self._last_voiced + 1)
        return head
