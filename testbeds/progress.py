"""Progress lines for long work: one line per event, prefixed with the elapsed time."""

from __future__ import annotations

import sys
import threading
import time

_start = time.monotonic()
_lock = threading.Lock()
_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence progress (for --json output, where stdout must stay machine-readable)."""
    global _quiet
    _quiet = quiet


def reset_clock() -> None:
    global _start
    _start = time.monotonic()


def say(message: str) -> None:
    if _quiet:
        return
    with _lock:
        print(f"[{time.monotonic() - _start:6.1f}s] {message}", file=sys.stderr, flush=True)
