"""Every third-party module the control node's code and the tests import is declared in
pyproject.toml (the package's dependencies or the extras the README's test command
installs), so a fresh machine can never lose a test module to a missing import."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Code that runs on the testbed's nodes, with the nodes' own Python and packages.
NODE_SIDE = [
    "testbeds/samples",
    "testbeds/checks/hpc_services/hub_session.py",
    "testbeds/checks/hpc_services/dask_notebook.py",
    "testbeds/checks/hpc_services/spark_aggregate.py",
    "testbeds/checks/data_management/rucio_probe.py",
    "testbeds/nodeside/buildbot_master.py",
    "testbeds/nodeside/post_receive.py",
    # The upstream charts' own code (test data, run by no one here).
    "tests/charts",
    # Runs inside the OpenStack control plane's container, on Debian's OpenStack packages.
    "tests/openstack/control_plane",
]
SCANNED = ["testbeds", "tests", "stacks"]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in ("test", "cloud"):
        requirements += project["optional-dependencies"][extra]
    names = {normalise(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in requirements}
    return names - {"wp5-testbeds"}


def control_node_files() -> list[Path]:
    skipped = [REPO / p for p in NODE_SIDE]
    files = []
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*.py")):
            if not any(path == s or s in path.parents for s in skipped):
                files.append(path)
    return files


def third_party_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    local = {"testbeds", "tests", "__future__"}
    return {m for m in found if m not in sys.stdlib_module_names and m not in local}


def test_node_side_paths_exist() -> None:
    """The list of node-side code cannot go stale."""
    missing = [p for p in NODE_SIDE if not (REPO / p).exists()]
    assert not missing


def test_every_import_is_declared() -> None:
    """Each third-party import comes from a distribution pyproject declares."""
    owners = packages_distributions()
    wanted = declared()
    undeclared = []
    for path in control_node_files():
        for module in sorted(third_party_imports(path)):
            dists = {normalise(d) for d in owners.get(module, [])}
            if not dists & wanted:
                source = ", ".join(sorted(dists)) or "nothing installed"
                undeclared.append(f"{path.relative_to(REPO)}: {module} (from {source})")
    assert not undeclared, "imported but not declared in pyproject.toml:\n" + "\n".join(undeclared)
