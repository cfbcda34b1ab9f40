"""Assertions and waits shared by the check suites."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def journal(host: Any, unit: str, lines: int = 30) -> str:
    """The unit's recent journal, to attach to a failing service check."""
    out = host.run(f"journalctl -u {unit} -n {lines} --no-pager")
    return out.stdout or out.stderr


def assert_service_running(host: Any, unit: str) -> None:
    service = host.service(unit)
    assert service.is_running, f"{unit} is not running:\n{journal(host, unit)}"
    assert service.is_enabled, f"{unit} is not enabled at boot"


def write_private_file(host: Any, path: str, content: str) -> None:
    """Write a root-only (0600) file on a node through the connection's stdin: a secret
    never goes on a command line (podman exec's or ssh's, which `ps` shows)."""
    backend = host.backend
    remote = f"umask 077 && cat > {shlex.quote(path)}"
    if backend.NAME == "podman":
        argv = ["podman", "exec", "-i", backend.name, "/bin/sh", "-c", remote]
    elif backend.NAME in ("ssh", "safe-ssh"):
        ssh, args = backend._build_ssh_command(remote)
        argv = shlex.split(backend.quote(" ".join(ssh), *args))
    else:
        raise NotImplementedError(f"no stdin for testinfra's {backend.NAME} connections")
    done = subprocess.run(argv, input=content.encode(), capture_output=True, timeout=60)
    assert done.returncode == 0, f"writing {path}: {done.stderr.decode(errors='replace')}"


def printed_result(output: str) -> dict[str, Any] | None:
    """The JSON object a check's program printed last on a line starting with `RESULT `
    (its other output is free text); None when it printed none."""
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1].removeprefix("RESULT ")) if lines else None


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 1.0) -> bool:
    """Poll until predicate() is true or the timeout passes; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def endpoint_adler32(client: Any, url: str, token_file: str) -> str:
    """The adler32 a storage endpoint itself reports for a file (root:// checksum query,
    with the storage token in ``token_file``)."""
    host, path = url.removeprefix("root://").split("/", 1)
    out = client.run(
        f"BEARER_TOKEN_FILE={token_file} xrdfs root://{host} query checksum /{path.lstrip('/')}"
    )
    assert out.rc == 0, f"{url}: {out.stderr}"
    algorithm, value = out.stdout.split()[:2]
    assert algorithm == "adler32", out.stdout
    return str(value)


class HubSessions:
    """Drives `hpc_services/hub_session.py` on the hub's node: logs a user in through the
    hub (at the token issuer where the hub logs users in there) with their password and
    starts, stops or runs code in their server. The script is copied once; each call writes
    the password to a 0600 file beside it for the call only. Gives the script's JSON
    answer."""

    SCRIPT = Path(__file__).parent / "hpc_services" / "hub_session.py"

    def __init__(self, hub: Any, port: int, ca_file: str) -> None:
        self.hub, self.port, self.ca_file = hub, port, ca_file
        self.workdir = hub.check_output("mktemp -d")
        self._write("hub_session.py", self.SCRIPT.read_text())

    @classmethod
    def for_testbed(cls, testbed: Any) -> HubSessions:
        """Sessions on the testbed's (first) hub, its port and CA as the roles got them."""
        hub = testbed.host(testbed.group("jupyterhub")[0])
        return cls(hub, testbed.value("jupyterhub_port"), testbed.value("testbed_ca_file"))

    def _write(self, name: str, content: str) -> None:
        write_private_file(self.hub, f"{self.workdir}/{name}", content)

    def run(
        self,
        user: str,
        password: str,
        action: str,
        timeout: int = 240,
        kernel: str = "",
        code: str = "",
    ) -> dict[str, Any]:
        self._write("password", password.strip())
        extra = ""
        if action == "run":
            self._write("code.py", code)
            extra = f" {kernel} {self.workdir}/code.py"
        out = self.hub.run(
            f"/usr/bin/python3 {self.workdir}/hub_session.py {self.port} {self.ca_file} {user} "
            f"{self.workdir}/password {action} {timeout}{extra}"
        )
        self.hub.run(f"rm -f {self.workdir}/password")
        assert out.rc == 0, out.stderr
        answer: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return answer

    def close(self) -> None:
        self.hub.run(f"rm -rf {self.workdir}")
