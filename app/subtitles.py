"""Subtitle cues cut from timed words: short lines that can be read while they are on screen.

A segment can run 20 s and hundreds of characters; as one cue it covers the picture and cannot be
read in time. With word times, cues follow the words instead: lines of at most `max_chars` (42, the
broadcast convention), at most `max_lines` lines a cue, a new cue after a sentence ends or at a pause,
each cue on screen from its first word's start to its last word's end.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from voxprompt.words import Word


@dataclass(frozen=True)
class SubtitleOptions:
    max_chars: int = 42  # per line
    max_lines: int = 2  # per cue
    max_pause_s: float = 1.0  # a longer silence between words starts a new cue


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def word_cues(words: Sequence[Word], options: SubtitleOptions = SubtitleOptions()) -> list[Cue]:
    """Cues covering `words` in order; they never overlap (a cue starts no earlier than the last ended)."""
    cues: list[Cue] = []
    lines: list[list[str]] = []
    first: Word | None = None
    last: Word | None = None

    def close() -> None:
        nonlocal lines, first
        if lines:
            start = max(first.start, cues[-1].end) if cues else first.start
            cues.append(Cue(start, max(last.end, start), tuple(" ".join(line) for line in lines)))
        lines, first = [], None

    for word in words:
        text = word.word.strip()
        if not text:
            continue
        if last is not None and word.start - last.end > options.max_pause_s:
            close()
        if lines and len(" ".join(lines[-1] + [text])) <= options.max_chars:
            lines[-1].append(text)
        elif len(lines) < options.max_lines:
            lines.append([text])
        else:
            close()
            lines.append([text])
        first = first or word
        last = word
        if text[-1] in ".?!":
            close()
    close()
    return cues
