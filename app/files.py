"""Files in, events out: the VAD segments of many files decoded together, reported in file order.

Segments are read, cut and encoded only when the LLM has a free seat for them, so memory stays
bounded however long the files are. Decoding runs ahead, but the events come in the order of the
files and their segments: the segment at the head streams its text live, later ones are held back
until it is done.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Union

import numpy as np
from voxprompt.audio import SAMPLE_RATE, AudioError, probe, stream_audio
from voxprompt.transcriber import Segment, Transcriber
from voxprompt.vad import SpeechSegment


@dataclass(frozen=True)
class FileStarted:
    path: Path
    duration: float  # seconds


@dataclass(frozen=True)
class SegmentStarted:
    path: Path
    speech: SpeechSegment


@dataclass(frozen=True)
class TokenText:
    path: Path
    text: str  # the next piece of the current segment's transcript


@dataclass(frozen=True)
class SegmentDone:
    path: Path
    segment: Segment


@dataclass(frozen=True)
class Progress:
    path: Path
    seconds: float  # of the file's audio transcribed so far


@dataclass(frozen=True)
class FileDone:
    path: Path
    error: Exception | None = None  # the file could not be read or decoded (segments before it were reported)


@dataclass(frozen=True)
class AudioClip:
    """Audio already in memory (16 kHz mono float32) that goes through the same path as a file; its
    events carry Path(name)."""

    name: str
    samples: np.ndarray


FileEvent = Union[FileStarted, SegmentStarted, TokenText, SegmentDone, Progress, FileDone]


@dataclass
class _InFlight:
    """A segment handed to the decoder, waiting for its turn to be reported."""

    path: Path
    speech: SpeechSegment
    pieces: list[str] = field(default_factory=list)
    result: Segment | None = None
    announced: bool = False
    reported: int = 0  # pieces already reported


def transcribe_files(transcriber: Transcriber, paths: Iterable[str | Path | AudioClip],
                     word_timestamps: bool = False) -> Iterator[FileEvent]:
    """Transcribe files (or clips) one after another in order, with up to the LLM's n_parallel segments
    in flight. `voxprompt transcribe` and `python -m voxprompt.models.evaluate` both run this."""
    outbox: deque[FileEvent | _InFlight] = deque()
    in_flight: dict[int, _InFlight] = {}

    def segments() -> Iterator[tuple[int, SpeechSegment]]:
        key = 0
        for name in paths:
            path = Path(name.name if isinstance(name, AudioClip) else name)
            try:
                reader = CountingReader(name)
                outbox.append(FileStarted(path, reader.duration()))
                for speech in transcriber.segments(reader.blocks()):
                    entry = in_flight[key] = _InFlight(path, speech)
                    outbox.append(entry)
                    outbox.append(Progress(path, reader.seconds))
                    yield key, speech
                    key += 1
            except AudioError as exc:
                outbox.append(FileDone(path, exc))
                continue
            outbox.append(Progress(path, reader.seconds))
            outbox.append(FileDone(path))

    def report() -> Iterator[FileEvent]:
        while outbox:
            head = outbox[0]
            if not isinstance(head, _InFlight):
                yield outbox.popleft()
                continue
            if not head.announced:
                head.announced = True
                yield SegmentStarted(head.path, head.speech)
            while head.reported < len(head.pieces):
                head.reported += 1
                if head.pieces[head.reported - 1]:
                    yield TokenText(head.path, head.pieces[head.reported - 1])
            if head.result is None:
                return  # still decoding: later entries wait
            outbox.popleft()
            yield SegmentDone(head.path, head.result)

    for key, event in transcriber.decode(segments(), word_timestamps):
        if isinstance(event, Segment):
            in_flight.pop(key).result = event
        else:
            in_flight[key].pieces.append(event.text)
        yield from report()
    yield from report()


class CountingReader:
    """A file streamed from disk in blocks (or a clip in memory), counting the samples read so far."""

    def __init__(self, source: str | Path | AudioClip):
        self.source, self.samples = source, 0

    def duration(self) -> float:
        if isinstance(self.source, AudioClip):
            return len(self.source.samples) / SAMPLE_RATE
        return probe(self.source).duration

    def blocks(self) -> Iterator:
        clip = isinstance(self.source, AudioClip)
        for block in [self.source.samples] if clip else stream_audio(self.source, block_seconds=10.0):
            self.samples += len(block)
            yield block

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE
