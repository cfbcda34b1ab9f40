"""Per-instance state directory: nodes, inventory, secrets, Ansible artifacts, timings, reports."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from testbeds import paths
from testbeds.errors import TestbedError, printable
from testbeds.model.fields import NAME_PATTERN

# Instances the tool makes for itself (a bake's builder): a dot no user name can contain.
RESERVED_PREFIX = "bake."
_RESERVED_PATTERN = re.escape(RESERVED_PREFIX) + NAME_PATTERN.removeprefix("^")


class InvalidInstanceName(TestbedError):
    """An instance name that is not a valid name (and so never a state directory)."""


def check_instance_name(instance: str, reserved_ok: bool = False) -> str:
    """The name itself when it may name a state directory; an error otherwise.

    A name is only ever a direct child of the state root: `.`, `..`, `''`, paths and
    anything outside the schema's name pattern are refused before any file is touched."""
    if re.fullmatch(NAME_PATTERN, instance) or (
        reserved_ok and re.fullmatch(_RESERVED_PATTERN, instance)
    ):
        return instance
    raise InvalidInstanceName(
        f"instance name {printable(instance[:80])!r} is not valid: lower-case letters, "
        "digits and '-', starting with a letter, at most 31 characters"
    )


def ensure_private_dir(path: Path) -> Path:
    """A directory only its owner can enter (made 0700, or tightened to it)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only, atomically: through a temporary file in
    the same directory, created 0600 (mkstemp), then renamed over the target, so no reader
    ever sees a partial or a more open file."""
    ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_private(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


@dataclass(frozen=True)
class PlayTiming:
    """One play: its wall time and the task time of its busiest node; the rest is what
    running a play costs (connecting, gathering, task dispatch)."""

    name: str
    wall_s: float
    busiest_node_s: float

    @property
    def overhead_s(self) -> float:
        return round(max(self.wall_s - self.busiest_node_s, 0.0), 2)


@dataclass(frozen=True)
class RoleTiming:
    """A role's task time per node, on nodes started from a baked image and on others."""

    role: str
    baked_s: float  # summed over baked nodes
    baked_nodes: int
    warm_s: float
    warm_nodes: int

    def per_node(self, kind: str) -> float | None:
        seconds, nodes = (
            (self.baked_s, self.baked_nodes) if kind == "baked" else (self.warm_s, self.warm_nodes)
        )
        return round(seconds / nodes, 2) if nodes else None


@dataclass
class Timings:
    """Wall-clock time per phase, kept in order."""

    phases: dict[str, float] = field(default_factory=dict)
    roles: dict[str, float] = field(default_factory=dict)
    # Each role's time per node on baked and warm nodes, and each play's overhead.
    role_nodes: list[RoleTiming] = field(default_factory=list)
    plays: list[PlayTiming] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = round(self.phases.get(name, 0.0) + time.monotonic() - start, 2)

    def total(self) -> float:
        return round(sum(self.phases.values()), 2)


@dataclass(frozen=True)
class InstanceRecord:
    """What `testbed` keeps about an instance between commands (its state's meta.json)."""

    testbed: str
    # Where the definition was read from: a shipped name, or a YAML file's absolute path.
    definition: str
    site: str
    target: str
    instance: str
    # A throw-away instance that builds baked images.
    bake: bool = False
    # Kubernetes: the namespace the workloads went to, and the kubeconfig context.
    namespace: str | None = None
    context: str = ""


class StateDir:
    """The state of one instance: always a direct child of the state root, 0700."""

    def __init__(self, instance: str, root: Path | None = None, reserved_ok: bool = False) -> None:
        self.instance = check_instance_name(instance, reserved_ok)
        self.root = root or paths.state_root()
        self.path = self.root / self.instance
        if self.path.parent != self.root:  # cannot happen for a valid name; never rely on it
            raise InvalidInstanceName(f"{instance!r} does not name a state directory")

    def exists(self) -> bool:
        return self.record_file.is_file()

    def create(self) -> None:
        """Make the state root and this instance's directory, both 0700."""
        ensure_private_dir(self.root)
        ensure_private_dir(self.path)

    @property
    def nodes_file(self) -> Path:
        return self.path / "nodes.json"

    @property
    def values_file(self) -> Path:
        """Every value the roles get, resolved as `testbed show --values` shows them."""
        return self.path / "values.json"

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

    @property
    def record_file(self) -> Path:
        return self.path / "meta.json"

    def write_record(self, record: InstanceRecord) -> None:
        """The one writer of the instance record (creating the state directory)."""
        if record.instance != self.instance:
            raise ValueError(f"record of {record.instance!r} written to {self.instance!r}")
        self.create()
        write_json(self.record_file, asdict(record))

    def read_record(self) -> InstanceRecord:
        data = json.loads(self.record_file.read_text(encoding="utf-8"))
        known = {f.name for f in fields(InstanceRecord)}
        return InstanceRecord(**{k: v for k, v in data.items() if k in known})

    def secret(self, name: str, nbytes: int) -> Path:
        """Path of a generated secret, creating it on first use; its value is never printed."""
        path = self.secrets_dir / name
        if not path.is_file():
            write_private(path, secrets.token_bytes(nbytes))
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
                "roles_per_node_s": {
                    r.role: {"baked": r.per_node("baked"), "warm": r.per_node("warm")}
                    for r in timings.role_nodes
                },
                "plays_s": [
                    {"play": p.name, "wall": p.wall_s, "overhead": p.overhead_s}
                    for p in timings.plays
                ],
                "total_s": timings.total(),
                **extra,
            },
        )
        return path

    def remove(self) -> None:
        """Delete this instance's directory: only ever the one named by a valid name."""
        if self.path.parent == self.root and self.path.name == self.instance:
            shutil.rmtree(self.path, ignore_errors=True)

    def back_up_secrets(self) -> Path | None:
        """Move the secrets to a dated folder beside the state (0700); returns where."""
        if not self.secrets_dir.is_dir():
            return None
        backups = ensure_private_dir(self.root / ".backups")
        target = backups / f"{self.instance}-{time.strftime('%Y%m%dT%H%M%S')}"
        shutil.move(str(self.secrets_dir), str(target))
        return target
