"""How many CPU cores other processes are using: llama.cpp gets fewer threads while they are busy (on 2
cores with one taken, one thread decodes faster than two that wait on each other at every barrier)."""
from __future__ import annotations

import os
import time


def _busy_seconds() -> float | None:
    """CPU seconds every process has spent (Linux /proc/stat; None elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """Cores used by other processes, over the window since the estimate was last renewed (at least
    `window_s`: /proc/stat counts in 10 ms ticks). 0.0 where it cannot be known."""

    def __init__(self, window_s: float = 0.2):
        self.window_s = window_s
        self._last = self._sample()
        self._cores = 0.0

    @staticmethod
    def _sample() -> tuple[float, float | None, float]:
        own = os.times()
        return time.monotonic(), _busy_seconds(), own.user + own.system

    def cores(self) -> float:
        now = self._sample()
        (t0, all0, own0), (t1, all1, own1) = self._last, now
        if all0 is None or all1 is None:
            return 0.0
        if t1 - t0 >= self.window_s:
            self._cores = max(0.0, ((all1 - all0) - (own1 - own0)) / (t1 - t0))
            self._last = now
        return self._cores
