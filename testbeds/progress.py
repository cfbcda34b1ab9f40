"""Progress lines for long work: one line per event, prefixed with the elapsed time."""

from __future__ import annotations

import sys
import threading
import time

_start = time.monotonic()
_lock = threading.Lock()


def reset_clock() -> None:
    global _start
    _start = time.monotonic()


def say(message: str) -> None:
    """On stderr, so that --json output on stdout stays machine-readable."""
    with _lock:
        print(f"[{time.monotonic() - _start:6.1f}s] {message}", file=sys.stderr, flush=True)
