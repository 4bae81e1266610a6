"""Ctrl-C and SIGTERM as one exception in the main thread, never lost.

Python raises KeyboardInterrupt wherever the main thread happens to be; inside a ctypes callback (llama.cpp
calls back into Python while it loads a model) the exception is printed and dropped, and the run goes
on. `StopSignals.held()` keeps a signal that arrives during such C work and raises it when the work ends.
"""
from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM)


class StopRequested(KeyboardInterrupt):
    """The user (Ctrl-C) or the system (SIGTERM) asked the process to stop."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process ended by the signal


class StopSignals:
    """Installs handlers for SIGINT and SIGTERM (main thread only) for the life of a `with` block."""

    def __init__(self):
        self._holding = 0
        self.pending: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        for signum in HANDLED:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame) -> None:
        if self._holding:
            self.pending = self.pending or signum
        else:
            raise StopRequested(signum)

    @contextmanager
    def held(self, raise_after: bool = True) -> Iterator[None]:
        """Hold signals for the block (C code that calls back into Python); raise one that came after, or
        with raise_after=False drop it (the block is the shutdown the signal asks for)."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
        if not self._holding and self.pending is not None:
            signum, self.pending = self.pending, None
            if raise_after:
                raise StopRequested(signum)
