"""Ctrl-C and SIGTERM as one exception in the main thread, never lost.

Python raises KeyboardInterrupt wherever the main thread happens to be; inside a ctypes callback (llama.cpp
calls back into Python to log, while it loads a model and now and then while it decodes) the exception is
printed and dropped, and the run goes on. A signal that lands in a registered callback is sent again a moment
later, once the main thread is back in ordinary code; `StopSignals.held()` keeps one for the end of a block.
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from types import CodeType, FrameType
from typing import Callable, Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM)
_CALLBACKS: set[CodeType] = set()  # Python functions C code calls: an exception raised in them is lost
REDELIVER_S = 0.02


def register_callback(function: Callable) -> Callable:
    """Mark a function that C code calls (a ctypes callback): a signal never raises inside it."""
    _CALLBACKS.add(function.__code__)
    return function


def _in_callback(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code in _CALLBACKS:
            return True
        frame = frame.f_back
    return False


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
        elif _in_callback(frame):  # raised here it would be dropped: have it delivered again shortly
            threading.Timer(REDELIVER_S, os.kill, (os.getpid(), signum)).start()
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
