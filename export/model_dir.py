"""Model directories are built aside and moved into place whole: an interrupted export leaves no half model,
and what a killed build left (SIGKILL, a power cut) is removed by the next one."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from voxprompt.outputs import process_alive

PREFIX = ".building-"


@contextmanager
def building(out_dir: str | Path) -> Iterator[Path]:
    """Yield a scratch directory beside out_dir; on success it replaces out_dir, on failure it is removed."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(out_dir.parent)
    work = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=out_dir.parent))
    try:
        yield work
        if out_dir.exists():
            shutil.rmtree(out_dir)
        work.replace(out_dir)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def remove_abandoned(parent: Path) -> None:
    """Scratch directories whose building process is gone (a build in progress elsewhere is left alone)."""
    for path in parent.glob(f"{PREFIX}*"):
        pid = path.name[len(PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or not process_alive(int(pid)):  # no pid: written by a voxprompt before pids
            shutil.rmtree(path, ignore_errors=True)
