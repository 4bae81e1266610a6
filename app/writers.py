"""Transcript writers: each segment is on disk as soon as it is transcribed, in this process's own
`<name>.<pid>.partial` file, which becomes `<name>` when the transcript is complete. A stopped run keeps
its partial file; a failed write leaves nothing behind."""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from voxprompt.outputs import OutputError, describe, kept_path, partial_path, printable
from voxprompt.subtitles import Cue, word_cues
from voxprompt.transcriber import Segment

FORMATS = ("txt", "srt", "vtt", "json")


def format_timestamp(seconds: float, decimal: str = ".", always_hours: bool = False) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    hours = f"{h:02d}:" if always_hours or h else ""
    return f"{hours}{m:02d}:{s:02d}{decimal}{ms:03d}"


class TranscriptWriter:
    """Base: open on creation, add() each segment (flushed at once), close() to complete, abort() to
    give up. Every file-system failure is an OutputError naming the transcript."""

    extension = ""

    def __init__(self, path: Path, source: Path, run: dict | None = None, word_timestamps: bool = False):
        self.path, self.source, self.run, self.count = path, source, run or {}, 0
        self.word_timestamps = word_timestamps  # JSON: each word's times; SRT/VTT: short word-timed cues
        self.partial = partial_path(path)
        self._file = None
        with self._writing():
            path.parent.mkdir(parents=True, exist_ok=True)
        self._start()

    def _start(self) -> None:
        with self._writing():
            self._file = open(self.partial, "w", encoding="utf-8")
            self._file.write(self.header())
            self._file.flush()

    def header(self) -> str:
        return ""

    def entry(self, segment: Segment) -> str:
        raise NotImplementedError

    def add(self, segment: Segment) -> None:
        if not segment.text:
            return
        self.count += 1
        with self._writing():
            self._file.write(self.entry(segment))
            self._file.flush()

    def close(self) -> None:
        """The transcript is complete: it takes its name (atomically: a reader sees all of it or none)."""
        with self._writing():
            if self._file is not None:
                self._file.close()
                self._file = None
            os.replace(self.partial, self.path)
            kept_path(self.path).unlink(missing_ok=True)  # an interrupted run's, now superseded

    def abort(self, keep: bool = False) -> Path | None:
        """Stop writing. keep=True (an interrupted run, an input that breaks off) leaves what was written as
        `<name>.partial` and returns that path, if anything was written."""
        try:
            if self._file is not None:
                self._file.close()
        except OSError:
            pass  # a full disk fails the final flush too
        self._file = None
        if keep and self.count:
            kept = kept_path(self.path)
            try:
                os.replace(self.partial, kept)
                return kept
            except OSError:
                return self.partial if self.partial.exists() else None
        self.partial.unlink(missing_ok=True)
        return None

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """OSError -> OutputError (one line: the transcript, what to do); the partial file removed."""
        try:
            yield
        except OSError as exc:
            self.abort()
            raise OutputError(f"{printable(self.path)}: cannot write the transcript ({describe(exc)}); "
                              "free space or choose another --output-dir") from None


class TxtWriter(TranscriptWriter):
    extension = "txt"

    def entry(self, segment: Segment) -> str:
        return segment.text + "\n"


class SubtitleWriter(TranscriptWriter):
    """A cue per segment; with word timestamps, short cues cut at word times (subtitles.py)."""

    cues = 0  # written so far (SRT numbers them)

    def entry(self, segment: Segment) -> str:
        if self.word_timestamps and segment.words:
            cues = word_cues(segment.words)
        else:
            cues = [Cue(segment.start, segment.end, (segment.text,))]
        return "".join(self.cue(c) for c in cues)

    def cue(self, cue: Cue) -> str:
        raise NotImplementedError


class SrtWriter(SubtitleWriter):
    extension = "srt"

    def cue(self, cue: Cue) -> str:
        self.cues += 1
        ts = lambda t: format_timestamp(t, decimal=",", always_hours=True)
        return f"{self.cues}\n{ts(cue.start)} --> {ts(cue.end)}\n{cue.text}\n\n"


class VttWriter(SubtitleWriter):
    extension = "vtt"

    def header(self) -> str:
        return "WEBVTT\n\n"

    def cue(self, cue: Cue) -> str:
        return f"{format_timestamp(cue.start)} --> {format_timestamp(cue.end)}\n{cue.text}\n\n"


class JsonWriter(TranscriptWriter):
    """A JSON document that is valid after every segment: its partial file is replaced whole each time."""

    extension = "json"

    def _start(self) -> None:  # no open file: each write replaces the document
        self.segments: list[dict] = []
        self._write()

    def add(self, segment: Segment) -> None:
        if not segment.text:
            return
        self.count += 1
        entry = {"start": round(segment.start, 3), "end": round(segment.end, 3), "text": segment.text,
                 "tokens": segment.tokens}
        if self.word_timestamps:
            entry["words"] = [w.to_json() for w in segment.words]
        self.segments.append(entry)
        self._write()

    def _write(self) -> None:
        doc = {"source": printable(self.source), "run": self.run,
               "text": " ".join(s["text"] for s in self.segments), "segments": self.segments}
        with self._writing():
            tmp = self.partial.with_name(self.partial.name + ".tmp")
            try:
                tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
                os.replace(tmp, self.partial)
            finally:
                tmp.unlink(missing_ok=True)


WRITERS = {cls.extension: cls for cls in (TxtWriter, SrtWriter, VttWriter, JsonWriter)}


def open_writer(fmt: str, path: Path, source: Path, run: dict | None = None,
                word_timestamps: bool = False) -> TranscriptWriter:
    """A writer of `source`'s transcript to `path` (outputs.output_paths names it); `run` (the model's id
    and the decoding options) goes into JSON, so a resumed batch knows what made it."""
    return WRITERS[fmt](path, source, run, word_timestamps)

