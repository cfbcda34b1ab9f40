"""Rucio operations on a live instance's client node, for the end-to-end faults: through
the Rucio REST API, with uploads carrying a storage token for the RSE."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from testbeds import paths
from testbeds.checks.conftest import Testbed
from testbeds.checks.storage_tokens import WRITE_SCOPES, StorageTokens
from testbeds.state import StateDir
from testbeds.targets.local import podman

PROBE = paths.CHECKS_DIR / "data_management" / "rucio_probe.py"
CLIENT_PYTHON = "/opt/rucio-clients/venv/bin/python"


@contextmanager
def rucio_on_client(instance: str) -> Iterator[Callable[..., Any]]:
    """A function running one probe operation; `token_for=node` adds a write token for it."""
    client = f"{instance}-client"
    podman.run("cp", str(PROBE), f"{client}:/tmp/rucio_probe.py")
    testbed = Testbed(StateDir(instance).nodes_file)
    tokens = StorageTokens(testbed, testbed.host(testbed.group("data_client")[0]))

    def run(*args: object, token_for: str = "") -> Any:
        token = []
        if token_for:
            token = [f"STORAGE_TOKEN_FILE={tokens.get(token_for, WRITE_SCOPES).token}"]
        proc = podman.exec_(
            client, "env", *token, CLIENT_PYTHON, "/tmp/rucio_probe.py", *map(str, args),
            timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    try:
        yield run
    finally:
        tokens.close()
