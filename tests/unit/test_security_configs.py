"""Security-relevant configurations as the roles render them (Ansible itself renders the
templates): NFS exports squash root and name only the testbed's nodes, and the XRootD
third-party-copy wrapper refuses every source but the testbed's endpoints."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.render import render_role_template

HOSTS = {name: {} for name in ("controller", "login", "cpu1", "site1", "site2")}


def test_nfs_exports_squash_root_and_name_only_testbed_nodes(tmp_path: Path) -> None:
    exports = render_role_template(
        "nfs_server",
        "exports.j2",
        tmp_path,
        HOSTS,
        {"nfs_server": ["controller"]},
        "controller",
        {
            "testbed_shared_filesystems": [{"path": "/home", "server": "controller"}],
            "testbed_node_group": "controller",
        },
    )
    (line,) = [ln for ln in exports.splitlines() if ln.startswith("/home")]
    clients = line.split()[1:]
    assert {c.split("(")[0] for c in clients} == set(HOSTS)
    for client in clients:
        options = client.split("(")[1].rstrip(")").split(",")
        assert "root_squash" in options and "no_root_squash" not in options
        assert "*" not in client


@pytest.fixture(scope="module")
def tpc_wrapper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("tpc")
    text = render_role_template(
        "xrootd",
        "tpc-pull.sh.j2",
        tmp,
        HOSTS,
        {"xrootd": ["site1", "site2"]},
        "site1",
    )
    # Stand-in for xrdcp: reaching it means the wrapper let the copy through.
    script = tmp / "wrapper.sh"
    script.write_text(text.replace("exec /usr/bin/xrdcp", f"exec {tmp}/xrdcp"))
    (tmp / "xrdcp").write_text("#!/bin/sh\necho passed-through\n")
    (tmp / "xrdcp").chmod(0o755)
    return script


def run_wrapper(script: Path, source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(script), "--server", source, "/srv/xrootd/data/f"],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    "source",
    [
        "root://site2:1094//data/f?tpc.key=k",
        "root://site2//data/f",
        "root://user@site2:1094//data/f",
        "root://localhost:1094//data/f",
        "root://[::1]:1094//data/f",
    ],
)
def test_tpc_wrapper_lets_testbed_endpoints_through(tpc_wrapper: Path, source: str) -> None:
    proc = run_wrapper(tpc_wrapper, source)
    assert proc.returncode == 0 and proc.stdout.strip() == "passed-through", proc.stderr


@pytest.mark.parametrize(
    "source",
    [
        "root://evil.example:1094//data/f",
        "root://10.0.0.9//data/f",
        "https://attacker//x",
        "root://site2.evil.example//data/f",
        "root://[2001:db8::1]:1094//f",
    ],
)
def test_tpc_wrapper_refuses_any_other_source(tpc_wrapper: Path, source: str) -> None:
    proc = run_wrapper(tpc_wrapper, source)
    assert proc.returncode == 1
    assert "passed-through" not in proc.stdout
    assert "is not an endpoint of this testbed" in proc.stderr
