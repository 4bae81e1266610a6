"""The process heap: large freed blocks go back to the system.

glibc raises its mmap threshold each time a large block is freed (up to 32 MB); from then on the
encoder's and CTC head's per-segment buffers (a few MB each) come from the heap and stay there after
they are freed: +130 MB of RSS over 50 segments. A fixed threshold keeps every block of 1 MB or more
in a mapping of its own, unmapped when freed; mapping it afresh costs no measurable speed here."""
from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3  # mallopt parameter (glibc's malloc.h)
LARGE_BLOCK = 1 << 20

_SET = False


def return_large_blocks() -> None:
    """Once per process; only where the C library is glibc (musl and macOS do not grow a heap this way)."""
    global _SET
    if _SET or not sys.platform.startswith("linux"):
        return
    _SET = True
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK)
