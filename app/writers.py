"""Transcript writers: each segment is on disk as soon as it is transcribed (a stopped run keeps it)."""
from __future__ import annotations

import json
import os
from pathlib import Path

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
    """Base: open on creation, add() each segment (flushed at once), close() at the end."""

    extension = ""

    def __init__(self, path: Path, source: Path):
        self.path, self.source, self.count = path, source, 0
        self._file = open(path, "w", encoding="utf-8")
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
        self._file.write(self.entry(segment))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TxtWriter(TranscriptWriter):
    extension = "txt"

    def entry(self, segment: Segment) -> str:
        return segment.text + "\n"


class SrtWriter(TranscriptWriter):
    extension = "srt"

    def entry(self, segment: Segment) -> str:
        ts = lambda t: format_timestamp(t, decimal=",", always_hours=True)
        return f"{self.count}\n{ts(segment.start)} --> {ts(segment.end)}\n{segment.text}\n\n"


class VttWriter(TranscriptWriter):
    extension = "vtt"

    def header(self) -> str:
        return "WEBVTT\n\n"

    def entry(self, segment: Segment) -> str:
        return f"{format_timestamp(segment.start)} --> {format_timestamp(segment.end)}\n{segment.text}\n\n"


class JsonWriter(TranscriptWriter):
    """A JSON document that is valid after every segment: rewritten atomically each time."""

    extension = "json"

    def __init__(self, path: Path, source: Path):  # no open file: each write replaces the document
        self.path, self.source, self.count = path, source, 0
        self.segments: list[dict] = []
        self._write()

    def add(self, segment: Segment) -> None:
        if not segment.text:
            return
        self.count += 1
        self.segments.append({"start": round(segment.start, 3), "end": round(segment.end, 3),
                              "text": segment.text, "tokens": segment.tokens})
        self._write()

    def _write(self) -> None:
        doc = {"source": str(self.source), "text": " ".join(s["text"] for s in self.segments),
               "segments": self.segments}
        tmp = self.path.with_suffix(".json.partial")
        tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)

    def close(self) -> None:
        pass


WRITERS = {cls.extension: cls for cls in (TxtWriter, SrtWriter, VttWriter, JsonWriter)}


def open_writer(fmt: str, output_dir: Path, source: Path) -> TranscriptWriter:
    output_dir.mkdir(parents=True, exist_ok=True)
    return WRITERS[fmt](output_dir / f"{source.stem}.{fmt}", source)
