"""Per-instance state directory: nodes, inventory, secrets, Ansible artifacts, timings, reports."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbeds import paths


def write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


@dataclass
class Timings:
    """Wall-clock time per phase, kept in order."""

    phases: dict[str, float] = field(default_factory=dict)
    roles: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = round(self.phases.get(name, 0.0) + time.monotonic() - start, 2)

    def total(self) -> float:
        return round(sum(self.phases.values()), 2)


class StateDir:
    def __init__(self, instance: str, root: Path | None = None) -> None:
        self.instance = instance
        self.path = (root or paths.state_root()) / instance

    def exists(self) -> bool:
        return (self.path / "meta.json").is_file()

    @property
    def nodes_file(self) -> Path:
        return self.path / "nodes.json"

    @property
    def inventory_file(self) -> Path:
        return self.path / "inventory" / "hosts.yml"

    @property
    def runner_dir(self) -> Path:
        return self.path / "runner"

    @property
    def report_file(self) -> Path:
        return self.path / "report.xml"

    @property
    def secrets_dir(self) -> Path:
        return self.path / "secrets"

    def write_meta(self, meta: dict[str, Any]) -> None:
        write_json(self.path / "meta.json", meta)

    def read_meta(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.path / "meta.json").read_text(encoding="utf-8"))
        return data

    def secret(self, name: str, nbytes: int) -> Path:
        """Path of a generated secret, creating it on first use; its value is never printed."""
        path = self.secrets_dir / name
        if not path.is_file():
            write_private(path, secrets.token_bytes(nbytes))
        return path

    def secret_text(self, name: str) -> Path:
        """A generated password-style secret (URL-safe text)."""
        path = self.secrets_dir / name
        if not path.is_file():
            write_private(path, secrets.token_urlsafe(24).encode())
        return path

    def write_timings(self, command: str, timings: Timings, extra: dict[str, Any]) -> Path:
        path = self.path / f"timings-{command}.json"
        write_json(
            path,
            {
                "command": command,
                "instance": self.instance,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "phases_s": timings.phases,
                "roles_s": timings.roles,
                "total_s": timings.total(),
                **extra,
            },
        )
        return path

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
