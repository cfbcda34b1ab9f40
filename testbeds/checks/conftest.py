"""Fixtures shared by every check suite: the testbed's nodes and testinfra hosts for them."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import testinfra

from testbeds import check_times
from testbeds.checks import lanes
from testbeds.checks.browser import Browser, browser, browser_missing
from testbeds.checks.directory_accounts import Newcomers, directory_host
from testbeds.nodes import ProvisionedNode, read_nodes


class Testbed:
    """The provisioned nodes of the instance under check, read from its state directory."""

    __test__ = False

    def __init__(self, nodes_file: Path) -> None:
        self.nodes_file = nodes_file
        self.nodes: list[ProvisionedNode] = read_nodes(nodes_file)
        plan_file = nodes_file.with_name("plan.json")
        self.plan: dict[str, Any] = json.loads(plan_file.read_text()) if plan_file.is_file() else {}
        values_file = nodes_file.with_name("values.json")
        self.values: dict[str, Any] = (
            json.loads(values_file.read_text()) if values_file.is_file() else {}
        )

    def value(self, name: str) -> Any:
        """A value as the roles got it (role default, definition, site override): checks
        never repeat a role's default."""
        if name not in self.values:
            raise KeyError(f"no role of this testbed sets {name!r} ({self.nodes_file.parent})")
        value = self.values[name]
        if isinstance(value, str) and "{{" in value:
            raise ValueError(f"{name} is a template ({value!r}): read the result on the node")
        return value

    def node_value(self, node: str, name: str) -> Any:
        """A value as the node got it: its node group's vars first, then `value`."""
        for group in self.plan.get("node_groups", []):
            if node in group.get("nodes", []) and name in group.get("vars", {}):
                return group["vars"][name]
        return self.value(name)

    def on_shared_filesystem(self, path: str) -> bool:
        """Whether a path lies on one of the testbed's shared filesystems."""
        return any(path.startswith(f"{fs['path']}/") for fs in self.plan["shared_filesystems"])

    @property
    def secrets_dir(self) -> Path:
        return self.nodes_file.with_name("secrets")

    @property
    def research_user(self) -> str:
        """The first account the definition creates: the user checks run jobs as."""
        accounts = self.plan.get("vars", {}).get("users_accounts") or [{"name": "root"}]
        return str(accounts[0]["name"])

    def traits(self, node: str) -> dict[str, Any]:
        """The hardware traits the definition gives the node's group."""
        for group in self.plan.get("node_groups", []):
            if node in group.get("nodes", []):
                return dict(group.get("traits", {}))
        raise KeyError(f"node {node!r} is in no node group of {self.nodes_file.parent}/plan.json")

    def node(self, name: str) -> ProvisionedNode:
        return next(n for n in self.nodes if n.name == name)

    def group(self, name: str) -> list[str]:
        return [n.name for n in self.nodes if name in n.roles or n.group == name]

    @cache  # noqa: B019 - one testinfra host per node for the whole session
    def host(self, name: str) -> Any:
        return testinfra.get_host(self.node(name).testinfra_uri)


@cache
def _testbed() -> Testbed:
    path = os.environ.get("TESTBED_NODES_FILE")
    if not path:
        raise pytest.UsageError("TESTBED_NODES_FILE is not set: run checks with `testbed verify`")
    return Testbed(Path(path))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a check marked `@pytest.mark.nodes("group")` once per node of that group."""
    marker = metafunc.definition.get_closest_marker("nodes")
    if marker is None or "node" not in metafunc.fixturenames:
        return
    names = _testbed().group(marker.args[0])
    if not names:
        pytest.fail(f"no node in group {marker.args[0]!r}: the testbed does not match its checks")
    metafunc.parametrize("node", names, ids=names)


# First: pytest-xdist's worker reads the groups in its own hook of the same name.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each check joins its lane (see `testbeds.checks.lanes`): `testbed verify` runs the
    lanes side by side (pytest-xdist's loadgroup), each lane's checks one after another, so
    nodes are checked at the same time while testbed-wide checks that share state never
    overlap; the lanes start longest first, by the instance's last report and, for checks
    it lacks, the testbed's kept times on this machine (see `testbeds.check_times`)."""
    names = [lanes.lane(item) for item in items]
    last_report = os.environ.get("TESTBED_LAST_REPORT")
    kept = os.environ.get("TESTBED_CHECK_TIMES")
    last = {
        **(check_times.read_kept(Path(kept)) if kept else {}),
        **(check_times.from_report(Path(last_report)) if last_report else {}),
    }
    order = lanes.longest_first(items, names, last)
    for index in order:
        items[index].add_marker(pytest.mark.xdist_group(names[index]))
    items[:] = [items[index] for index in order]


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`testbed verify`'s lanes: see `testbeds.checks.lanes.LaneAtATime`."""
    if config.getvalue("dist") == "loadgroup":
        return lanes.LaneAtATime(config, log)
    return None


# pytest-xdist's loadgroup appends "@<group>" to the node ids it schedules.
_GROUP_SUFFIX = re.compile(r"@(testbed-[A-Za-z0-9_-]+|node-[^@\[\]]+)$")


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the process that writes the report
        config.pluginmanager.register(_PlainCheckNames(), "testbed-plain-check-names")


class _PlainCheckNames:
    """Report each check under its own name, whatever group it ran in: the JUnit report and
    the output are the same run side by side or one after another. (Workers keep the ids
    xdist gave them: it checks them.)"""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        report.nodeid = _GROUP_SUFFIX.sub("", report.nodeid)


@pytest.fixture(scope="session")
def testbed() -> Testbed:
    return _testbed()


@pytest.fixture
def host(testbed: Testbed, node: str) -> Any:
    return testbed.host(node)


@pytest.fixture
def web_browser(testbed: Testbed, request: pytest.FixtureRequest) -> Iterator[Browser]:
    """A headless browser on the testbed's network (as from its entry node), trusting the
    testbed's CA; its screenshots go beside the check report, in a folder per check."""
    missing = browser_missing()
    if missing:
        pytest.skip(f"no browser for the web-page checks: {missing}")
    state = testbed.nodes_file.parent
    shots = state / "screenshots" / re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    shutil.rmtree(shots, ignore_errors=True)
    entry = str(testbed.plan.get("entry") or testbed.nodes[0].name)
    with browser(
        testbed.secrets_dir / "ca" / "ca.crt", state / "ssh_config", entry, shots
    ) as opened:
        yield opened


@pytest.fixture(scope="session")
def user_shell(testbed: Testbed) -> Callable[[Any, str], Any]:
    """Run a command as the research user in a login shell (so Lmod and PATH are set up)."""

    def run(host: Any, command: str) -> Any:
        quoted = command.replace("'", "'\\''")
        return host.run(f"su - {testbed.research_user} -c '{quoted}'")

    return run


@pytest.fixture
def newcomers(testbed: Testbed) -> Iterator[Newcomers]:
    """Accounts a check adds to the directory after `up`; removed again afterwards."""
    made = Newcomers(directory_host(testbed))
    yield made
    made.close()
