"""Where transcripts go: one name per input (distinct when stems collide), the folder checked before the
model loads, and names that fit the file system with room for the temporary suffix.

Naming: `talk.wav` -> `talk.<format>`. Inputs that share a stem keep their extension (`talk.wav.txt`,
`talk.flac.txt`); inputs that still collide (`a/talk.wav`, `b/talk.wav`) take their parent folders'
names in front (`a_talk.wav.txt`, `b_talk.wav.txt`), then a number if even that is not enough.
"""
from __future__ import annotations

import errno
import os
import uuid
from collections import defaultdict
from pathlib import Path

NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems alike
PARTIAL_SUFFIX = ".partial"


class OutputError(Exception):
    """An output that cannot be written; the message is one line naming the file and what to do."""


def printable(path: Path | str) -> str:
    """A path as text that can always be printed or put in JSON (a name that is not UTF-8 keeps its
    readable parts and shows the rest as U+FFFD)."""
    return os.fsencode(str(path)).decode("utf-8", errors="replace")


def partial_path(path: Path) -> Path:
    """This process's temporary name for an output: two runs writing the same transcript never share one."""
    return path.with_name(f"{path.name}.{os.getpid()}{PARTIAL_SUFFIX}")


def _fit(name: str, suffix: str) -> str:
    """name + suffix, shortened at the end of `name` so that its temporary twin still fits NAME_MAX."""
    room = NAME_MAX - len(os.fsencode(f".{2 ** 22}{PARTIAL_SUFFIX}.tmp"))  # the largest Linux pid; json's .tmp
    while name and len(os.fsencode(name + suffix)) > room:
        name = name[:-1]
    return name + suffix


def output_paths(inputs: list[Path], output_dir: Path, fmt: str) -> dict[Path, Path]:
    """Each input's transcript path in output_dir; distinct inputs never share one."""
    suffix = f".{fmt}"
    def with_parents(k: int):
        return lambda p: "_".join([*p.resolve().parent.parts[1:][-k:], p.name])

    candidates = [lambda p: p.stem, lambda p: p.name, with_parents(1), with_parents(2)]
    unique = list(dict.fromkeys(inputs))
    names: dict[Path, str] = {}
    pending = unique
    for candidate in candidates:
        groups: defaultdict[str, list[Path]] = defaultdict(list)
        for path in pending:
            groups[_fit(candidate(path), suffix)].append(path)
        pending = []
        for name, paths in groups.items():
            if len(paths) == 1 and name not in names.values():
                names[paths[0]] = name
            else:
                pending.extend(paths)
    taken = set(names.values())
    for path in pending:  # the same folder names and file name: number them in the order given
        n = 2
        while (name := _fit(f"{path.stem}-{n}", suffix)) in taken:
            n += 1
        names[path] = name
        taken.add(name)
    return {path: output_dir / names[path] for path in unique}


def prepare_output_dir(output_dir: Path) -> None:
    """Create the folder and prove that a file can be made in it: a bad --output-dir is one line before
    the model loads, not a traceback after."""
    shown = printable(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(f"{shown}: is a file, not a folder; give --output-dir a folder")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / f".voxprompt-{uuid.uuid4().hex[:12]}{PARTIAL_SUFFIX}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{shown}: cannot write transcripts here ({describe(exc)}); "
                          "choose another --output-dir") from None


def describe(exc: OSError) -> str:
    """An OSError's reason without its file name (the caller names the file)."""
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    return exc.strerror or type(exc).__name__
