"""Where transcripts go: the inputs of a batch found (folders with --recursive), one output name per input
(distinct when stems collide), the folder checked before the model loads, names that fit the file
system with room for the temporary suffix, and which outputs are already complete (a resumed batch).

Naming: `talk.wav` -> `talk.<format>`. Inputs that share a stem keep their extension (`talk.wav.txt`,
`talk.flac.txt`); inputs that still collide (`a/talk.wav`, `b/talk.wav`) take their parent folders'
names in front (`a_talk.wav.txt`, `b_talk.wav.txt`), then a number if even that is not enough. Files
found in a folder keep their place below it: `DIR/x/talk.wav` -> `OUT/x/talk.<format>`.
"""
from __future__ import annotations

import errno
import json
import os
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from voxprompt.audio import AUDIO_SUFFIXES

NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems alike
PARTIAL_SUFFIX = ".partial"


class OutputError(Exception):
    """An output that cannot be written; the message is one line naming the file and what to do."""


@dataclass(frozen=True)
class Input:
    path: Path
    folder: Path = Path()  # where below the output folder its transcript goes (files found in folders)


def printable(path: Path | str) -> str:
    """A path as text that can always be printed or put in JSON (a name that is not UTF-8 keeps its
    readable parts and shows the rest as U+FFFD)."""
    return os.fsencode(str(path)).decode("utf-8", errors="replace")


def find_inputs(names: list[str | Path], recursive: bool) -> list[Input]:
    """The batch's files in order: each name as given, a folder (with `recursive`) as the audio files
    below it, sorted. A folder without `recursive` is kept as given (reading it fails in one line)."""
    found: list[Input] = []
    for name in map(Path, names):
        if recursive and name.is_dir():
            files = sorted(p for p in name.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            found += [Input(p, p.parent.relative_to(name)) for p in files]
        else:
            found.append(Input(name))
    return list(dict.fromkeys(found))


def partial_path(path: Path) -> Path:
    """This process's temporary name for an output: two runs writing the same transcript never share one."""
    return path.with_name(f"{path.name}.{os.getpid()}{PARTIAL_SUFFIX}")


def kept_path(path: Path) -> Path:
    """Where an interrupted run leaves what it had of an output (until a later run completes it)."""
    return path.with_name(path.name + PARTIAL_SUFFIX)


def remove_stale_partials(path: Path) -> None:
    """Temporary files of this output whose process is gone (killed: SIGKILL, a power cut)."""
    for stale in path.parent.glob(f"{path.name}.*{PARTIAL_SUFFIX}"):
        pid = stale.name[len(path.name) + 1: -len(PARTIAL_SUFFIX)]
        if pid.isdigit() and not process_alive(int(pid)):
            stale.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _fit(name: str, suffix: str) -> str:
    """name + suffix, shortened at the end of `name` so that its temporary twin still fits NAME_MAX."""
    room = NAME_MAX - len(os.fsencode(f".{2 ** 22}{PARTIAL_SUFFIX}.tmp"))  # the largest Linux pid; json's .tmp
    while name and len(os.fsencode(name + suffix)) > room:
        name = name[:-1]
    return name + suffix


def output_paths(inputs: list[Input], output_dir: Path, fmt: str) -> dict[Path, Path]:
    """Each input's transcript path below output_dir; distinct inputs never share one."""
    by_folder: defaultdict[Path, list[Path]] = defaultdict(list)
    for item in dict.fromkeys(inputs):
        by_folder[item.folder].append(item.path)
    return {path: output_dir / folder / name
            for folder, paths in by_folder.items() for path, name in _distinct_names(paths, f".{fmt}").items()}


def _distinct_names(paths: list[Path], suffix: str) -> dict[Path, str]:
    def with_parents(k: int):
        return lambda p: "_".join([*p.resolve().parent.parts[1:][-k:], p.name])

    candidates = [lambda p: p.stem, lambda p: p.name, with_parents(1), with_parents(2)]
    unique = list(dict.fromkeys(paths))
    names: dict[Path, str] = {}
    pending = unique
    for candidate in candidates:
        groups: defaultdict[str, list[Path]] = defaultdict(list)
        for path in pending:
            groups[_fit(candidate(path), suffix)].append(path)
        pending = []
        for name, group in groups.items():
            if len(group) == 1 and name not in names.values():
                names[group[0]] = name
            else:
                pending.extend(group)
    taken = set(names.values())
    for path in pending:  # the same folder names and file name: number them in the order given
        n = 2
        while (name := _fit(f"{path.stem}-{n}", suffix)) in taken:
            n += 1
        names[path] = name
        taken.add(name)
    return {path: names[path] for path in unique}


def is_complete(output: Path, run: dict) -> bool:
    """A transcript a resumed batch can skip. Every output under its final name is complete (it is renamed
    there when done); a JSON one must also come from the same model and options (`run`)."""
    if not output.is_file():
        return False
    if output.suffix != ".json":
        return True
    try:
        return json.loads(output.read_text(encoding="utf-8")).get("run") == run
    except (OSError, ValueError, AttributeError):
        return False


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
