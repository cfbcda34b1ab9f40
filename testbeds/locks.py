"""One command at a time on an instance: up, down, bake and verify hold its lock.

The lock is an flock on a file under the state root's `.locks/`, so the kernel releases it
when its holder dies, even by SIGKILL; the file names the holder (pid, command, start) for
the one-line refusal a second command gets."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testbeds import paths
from testbeds.errors import TestbedError
from testbeds.state import check_instance_name, ensure_private_dir

# Instances this process holds already: up runs verify inside its own lock.
_HELD: set[str] = set()


class InstanceBusy(TestbedError):
    """Another command is working on the instance."""


def lock_path(instance: str) -> Path:
    return ensure_private_dir(paths.state_root() / ".locks") / f"{instance}.lock"


def _holder_text(raw: str) -> str:
    try:
        holder = json.loads(raw)
        return f"pid {holder['pid']} ({holder['command']}), started {holder['started']}"
    except (ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def instance_lock(instance: str, command: str, reserved_ok: bool = False) -> Iterator[None]:
    """Hold the instance's lock for the block, or stop with the holder named (exit 2)."""
    check_instance_name(instance, reserved_ok)
    if instance in _HELD:
        yield
        return
    fd = os.open(lock_path(instance), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raw = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            raise InstanceBusy(
                f"instance {instance!r} is busy: {_holder_text(raw)} is working on it; "
                "wait for it to finish or stop it"
            ) from None
        holder = {
            "pid": os.getpid(),
            "command": command[:300],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        _HELD.add(instance)
        try:
            yield
        finally:
            _HELD.discard(instance)
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
