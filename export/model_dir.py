"""Model directories are built aside and moved into place whole: an interrupted export leaves no half model."""
from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def building(out_dir: str | Path) -> Iterator[Path]:
    """Yield a scratch directory beside out_dir; on success it replaces out_dir, on failure it is removed."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".building-", dir=out_dir.parent))
    try:
        yield work
        if out_dir.exists():
            shutil.rmtree(out_dir)
        work.replace(out_dir)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
