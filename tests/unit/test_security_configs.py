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


SHARE_DIRS = Path(__file__).parents[2] / "roles" / "xrootd" / "files" / "xrootd-share-dirs.py"


def share_dirs(root: Path, *lines: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["python3", str(SHARE_DIRS), str(root), "0755"],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )


def test_share_dirs_opens_each_directory_xrootd_made_down_from_the_storage(
    tmp_path: Path,
) -> None:
    """Fed the namespace path of a directory made 0700 (with its parents), the helper sets
    the mode on each directory from the storage root down, and on nothing else."""
    root = tmp_path / "storage"
    made = root / "data" / "rucio" / "testbed" / "ab"
    made.mkdir(parents=True, mode=0o700)
    for folder in (made, *made.parents):
        if folder == root or root in folder.parents:
            folder.chmod(0o700)
    sibling = root / "data" / "private"
    sibling.mkdir(mode=0o700)
    a_file = made / "f0"
    a_file.write_text("x")
    a_file.chmod(0o600)
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)

    share_dirs(root, "/data/rucio/testbed/ab", "/data/rucio/testbed/ab/f0", "/../outside")

    for folder in (root / "data", root / "data" / "rucio", root / "data" / "rucio" / "testbed"):
        assert folder.stat().st_mode & 0o777 == 0o755, folder
    assert made.stat().st_mode & 0o777 == 0o755
    assert sibling.stat().st_mode & 0o777 == 0o700  # not on the path: untouched
    assert a_file.stat().st_mode & 0o777 == 0o600  # files keep XRootD's mode
    assert outside.stat().st_mode & 0o777 == 0o700  # outside the storage: refused


def test_share_dirs_goes_on_after_a_path_that_is_gone(tmp_path: Path) -> None:
    """A directory removed before the helper reads its line is skipped; later lines apply."""
    root = tmp_path / "storage"
    (root / "data" / "b").mkdir(parents=True, mode=0o700)
    (root / "data").chmod(0o700)
    done = share_dirs(root, "/data/a", "/data/b")
    assert done.returncode == 0
    assert (root / "data" / "b").stat().st_mode & 0o777 == 0o755
