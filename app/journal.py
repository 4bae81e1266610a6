"""The transcript journal: every final line is on disk (flushed and synced) the moment it is committed."""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")

    def append(self, text: str) -> None:
        self._file.write(f"[{datetime.now().isoformat(timespec='seconds')}] {text}\n")
        self._file.flush()
        os.fsync(self._file.fileno())  # a crash or power cut one second later must not lose it

    def close(self) -> None:
        self._file.close()
