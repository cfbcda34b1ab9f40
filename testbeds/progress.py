"""Progress lines for long work: one line per event, prefixed with the elapsed time."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_start = time.monotonic()
_lock = threading.Lock()
_last_said = time.monotonic()
# No phase stays silent for longer than this: long work says what it is still doing.
HEARTBEAT_S = 10.0


def reset_clock() -> None:
    global _start
    _start = time.monotonic()


def say(message: str) -> None:
    """On stderr, so that --json output on stdout stays machine-readable."""
    global _last_said
    with _lock:
        _last_said = time.monotonic()
        print(f"[{_last_said - _start:6.1f}s] {message}", file=sys.stderr, flush=True)


def seconds_since_said() -> float:
    with _lock:
        return time.monotonic() - _last_said


@contextmanager
def heartbeat(
    status: Callable[[], str],
    every_s: float | None = None,
    tell: Callable[[str], None] = say,
) -> Iterator[None]:
    """While the block runs, say `status()` whenever nothing was said for `every_s`, so a
    long step is never silent (the base image's debootstrap, a long Ansible task)."""
    done = threading.Event()
    every = HEARTBEAT_S if every_s is None else every_s

    def beat() -> None:
        last_beat = time.monotonic()
        while not done.wait(min(1.0, every / 4)):
            now = time.monotonic()
            if seconds_since_said() >= every and now - last_beat >= every:
                last_beat = now
                tell(status())

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
