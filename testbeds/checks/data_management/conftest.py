"""Fixtures of the data-management checks: a Rucio client on the client node."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testbeds.checks.storage_tokens import StorageTokens

PROBE = Path(__file__).with_name("rucio_probe.py")


@pytest.fixture(scope="session")
def client(testbed: Any) -> Any:
    return testbed.host(testbed.group("rucio_client")[0])


@pytest.fixture(scope="session")
def rucio(testbed: Any, client: Any) -> Iterator[Callable[..., Any]]:
    """Run one Rucio operation on the client node, through Rucio's REST API."""
    python = f"{testbed.value('rucio_client_venv')}/bin/python"
    workdir = client.check_output("mktemp -d")
    client.run(f"cat > {workdir}/rucio_probe.py <<'EOF'\n{PROBE.read_text()}\nEOF")

    def run(*args: object, token_file: str = "") -> Any:
        env = f"STORAGE_TOKEN_FILE={token_file} " if token_file else ""
        out = client.run(f"{env}{python} {workdir}/rucio_probe.py {' '.join(map(str, args))}")
        assert out.rc == 0, f"rucio {args[0]} failed:\n{out.stderr[-3000:]}"
        return json.loads(out.stdout.strip().splitlines()[-1])

    yield run
    client.run(f"rm -rf {workdir}")


@pytest.fixture(scope="session")
def tokens(testbed: Any, client: Any) -> Iterator[StorageTokens]:
    """Storage tokens on the client node, from the definition's storage client."""
    found = StorageTokens(testbed, client)
    yield found
    found.close()
