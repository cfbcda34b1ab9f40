"""Assertions and waits shared by the check suites."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def journal(host: Any, unit: str, lines: int = 30) -> str:
    """The unit's recent journal, to attach to a failing service check."""
    out = host.run(f"journalctl -u {unit} -n {lines} --no-pager")
    return out.stdout or out.stderr


def assert_service_running(host: Any, unit: str) -> None:
    service = host.service(unit)
    assert service.is_running, f"{unit} is not running:\n{journal(host, unit)}"
    assert service.is_enabled, f"{unit} is not enabled at boot"


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 1.0) -> bool:
    """Poll until predicate() is true or the timeout passes; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def endpoint_adler32(client: Any, url: str) -> str:
    """The adler32 a storage endpoint itself reports for a file (root:// checksum query)."""
    host, path = url.removeprefix("root://").split("/", 1)
    out = client.run(f"xrdfs root://{host} query checksum /{path.lstrip('/')}")
    assert out.rc == 0, f"{url}: {out.stderr}"
    algorithm, value = out.stdout.split()[:2]
    assert algorithm == "adler32", out.stdout
    return str(value)
