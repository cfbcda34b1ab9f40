"""Elastic node groups: what a definition may say, what the plan makes of it, and the node
broker's boundary (what Slurm's programs may ask, and what happens when a node fails)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from testbeds.elastic.broker import Broker, reason_text
from testbeds.elastic.requests import RequestRefused, parse_request
from testbeds.errors import DefinitionError
from testbeds.model.loader import load_definition, load_site
from testbeds.model.plan import build_plan, resolve
from testbeds.slurm_states import SlurmNodeState, parse_sinfo, sinfo_arguments

SLURM_UID = 64030


def definition(tmp_path: Path, **elastic: object) -> Path:
    data = {
        "name": "burst",
        "description": "a controller and an elastic group",
        "checks": ["slurm_core"],
        "entry": "controller",
        "node_groups": [
            {"name": "controller", "roles": ["common", "munge", "slurm_controller"]},
            {
                "name": "burst",
                "count": 0,
                "max": 3,
                "roles": ["common", "munge", "slurm_compute"],
                **elastic,
            },
        ],
    }
    path = tmp_path / "burst.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_slurm_knows_every_node_and_up_starts_only_count(tmp_path: Path) -> None:
    plan = build_plan(
        load_definition(str(definition(tmp_path, count=1))), load_site("local"), "local"
    )
    assert [n.name for n in plan.nodes if n.group == "burst"] == ["burst1"]
    assert [n.name for n in plan.elastic_nodes] == ["burst2", "burst3"]
    assert all(n.elastic for n in plan.elastic_nodes)
    assert "burst2" not in plan.groups()["slurm_compute"]
    group = plan.as_dict()["node_groups"][1]
    assert (group["nodes"], group["max"], group["elastic_nodes"]) == (
        ["burst1"],
        3,
        ["burst2", "burst3"],
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max": 2, "count": 2}, "node_groups[burst].count: 2 is not below max (2)"),
        ({"max": 1, "count": 3}, "count: 3 is not below max (1)"),
        ({"max": None}, "node_groups[burst].count: 0 nodes needs max"),
        ({"max": 0}, "node_groups[burst].max: Input should be greater than or equal to 1"),
        ({"max": 257}, "node_groups[burst].max: Input should be less than or equal to 256"),
        (
            {"roles": ["common", "munge"]},
            "node_groups[burst].max: only Slurm compute nodes can be elastic (Slurm starts and "
            "stops them); add the role slurm_compute or drop max",
        ),
    ],
)
def test_bad_elastic_groups_are_refused_naming_file_and_field(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    path = definition(tmp_path, **change)
    with pytest.raises(DefinitionError) as info:
        load_definition(str(path))
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_min_is_the_count_of_an_elastic_group(tmp_path: Path) -> None:
    """`min: 1, max: 3` is `count: 1, max: 3`: one node always running, two elastic."""
    path = definition(tmp_path, min=1)
    data = yaml.safe_load(path.read_text())
    del data["node_groups"][1]["count"]
    path.write_text(yaml.safe_dump(data))
    group = load_definition(str(path)).node_groups[1]
    assert (group.count, group.max, group.elastic_node_names()) == (1, 3, ["burst2", "burst3"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"min": 1}, "node_groups[burst]: min: give min or count (the same number), not both"),
        ({"min": 1, "count": None, "max": None}, "min: only an elastic group has one"),
        ({"min": -1, "count": None}, "min: -1 is not a whole number of nodes"),
        ({"min": "1", "count": None}, "min: '1' is not a whole number of nodes"),
        ({"min": 3, "count": None}, "node_groups[burst]: min: 3 is not below max (3)"),
    ],
)
def test_bad_min_is_refused_naming_file_and_field(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    path = definition(tmp_path, **change)
    data = yaml.safe_load(path.read_text())
    group = data["node_groups"][1]
    for key in [k for k, v in group.items() if v is None]:
        del group[key]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DefinitionError) as info:
        load_definition(str(path))
    assert str(path) in str(info.value) and message in str(info.value)


def test_the_controller_or_the_entry_cannot_be_elastic(tmp_path: Path) -> None:
    data = yaml.safe_load(definition(tmp_path).read_text())
    data["node_groups"][0] |= {"count": 0, "max": 2}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(DefinitionError, match=r"node_groups\[controller\].max: the entry group"):
        load_definition(str(tmp_path / "c.yaml"))
    data["entry"] = "burst"
    data["node_groups"][0] = {"name": "controller", "roles": ["common", "slurm_controller"]}
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(DefinitionError, match=r"node_groups\[burst\].max: the entry group"):
        load_definition(str(tmp_path / "e.yaml"))
    data["entry"] = "controller"
    data["shared_filesystems"] = [{"path": "/home", "server": "burst"}]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(DefinitionError, match="an elastic group cannot serve /home"):
        load_definition(str(tmp_path / "s.yaml"))


def test_hpc_access_ships_one_elastic_cpu_group() -> None:
    plan = resolve("hpc-access")
    groups = {n.group for n in plan.elastic_nodes}
    assert groups == {"elastic"}
    assert all(n.traits.gpus == 0 and "slurm_compute" in n.roles for n in plan.elastic_nodes)
    assert not any(n.group == "elastic" for n in plan.nodes)


ELASTIC = frozenset({"burst2", "burst3"})


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"resume burst2", "not JSON"),
        (b"[]", "exactly `action` and `nodes`"),
        (b'{"action": "resume", "nodes": ["burst2"], "image": "x"}', "exactly"),
        (b'{"action": "exec", "nodes": ["burst2"]}', "unknown action"),
        (b'{"action": "resume", "nodes": "burst2"}', "must be a list"),
        (b'{"action": "resume", "nodes": []}', "must be a list of 1"),
        (b'{"action": "resume", "nodes": [2]}', "must hold names"),
        (b'{"action": "resume", "nodes": ["controller"]}', '"controller" is not an elastic'),
        (b'{"action": "suspend", "nodes": ["../burst2"]}', "is not an elastic node"),
        (b'{"action": "resume", "nodes": ["burst2", "burst2"]}', "named twice"),
        (b'{"action": "resume", "nodes": ["' + b"x" * 70000 + b'"]}', "longer than"),
    ],
)
def test_requests_other_than_this_instances_elastic_nodes_are_refused(
    line: bytes, why: str
) -> None:
    with pytest.raises(RequestRefused, match=why.replace("[", r"\[")):
        parse_request(line, ELASTIC)


def test_a_request_names_an_action_and_elastic_nodes() -> None:
    request = parse_request(b'{"action": "resume-fail", "nodes": ["burst3"]}\n', ELASTIC)
    assert (request.action, request.nodes) == ("resume-fail", ("burst3",))


class FakeKeeper:
    """Records what the broker asks of it; `fail` makes resume raise."""

    elastic_nodes = ELASTIC

    def __init__(self, fail: str = "") -> None:
        self.fail = fail
        self.calls: list[tuple[str, str]] = []
        self.down: dict[str, str] = {}
        self.gone: list[str] = []
        self.done = threading.Event()

    def allowed_uid(self) -> int | None:
        return SLURM_UID

    def resume(self, node: str) -> None:
        self.calls.append(("resume", node))
        if self.fail:
            raise RuntimeError(self.fail)
        self.done.set()

    def remove(self, node: str) -> None:
        self.calls.append(("remove", node))

    def mark_down(self, node: str, reason: str) -> None:
        self.down[node] = reason
        self.done.set()

    def vanished(self) -> list[str]:
        return self.gone


def test_only_slurms_user_is_heard() -> None:
    keeper = FakeKeeper()
    broker = Broker(keeper)
    request = b'{"action": "resume", "nodes": ["burst2"]}'
    refused = broker.answer(request, peer_uid=0)
    assert not refused.accepted and "SlurmUser" in refused.message
    assert keeper.calls == []
    accepted = broker.answer(request, peer_uid=SLURM_UID)
    assert accepted.accepted
    assert keeper.done.wait(10)
    assert keeper.calls == [("resume", "burst2")]


def test_a_failed_resume_is_cleaned_up_and_the_node_marked_down_with_the_reason() -> None:
    keeper = FakeKeeper(fail="image localhost/x:1 is missing\nmore detail")
    broker = Broker(keeper)
    broker.carry_out("resume", "burst3")
    assert keeper.calls == [("resume", "burst3"), ("remove", "burst3")]
    assert keeper.down == {"burst3": "resume failed: image localhost/x:1 is missing"}


def test_a_vanished_node_is_marked_down() -> None:
    keeper = FakeKeeper()
    keeper.gone = ["burst2"]
    Broker(keeper).check_nodes()
    assert keeper.down == {"burst2": "node vanished while up"}
    assert ("remove", "burst2") in keeper.calls


def test_reasons_reach_slurm_as_plain_text() -> None:
    assert reason_text(RuntimeError('a "quoted" $(cmd)\nsecond')) == "a _quoted_ _(cmd)"
    assert len(reason_text(RuntimeError("x" * 500))) == 200


def test_the_socket_answers_a_peer_by_its_user_id(tmp_path: Path) -> None:
    """Over the real Unix socket, in a broker process of its own until SIGTERM: this
    process (not SlurmUser) is refused by the kernel's account of who connected, whatever
    it sends; the socket goes with the broker."""
    path = tmp_path / "broker.sock"
    code = (
        "import sys; from testbeds.elastic.broker import Broker, serve\n"
        "from tests.unit.test_elastic import FakeKeeper\n"
        f"serve(Broker(FakeKeeper()), __import__('pathlib').Path({str(path)!r}))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not path.is_socket():
            assert process.poll() is None and time.monotonic() < deadline, process.stderr
            time.sleep(0.1)
        assert path.stat().st_mode & 0o777 == 0o666
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(path))
            client.sendall(b'{"action": "resume", "nodes": ["burst2"]}\n')
            reply = json.loads(client.makefile("rb").readline())
        assert reply == {
            "accepted": False,
            "message": "refused: only the Slurm controller's SlurmUser may ask",
        }
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    assert not path.exists()


def test_the_broker_gets_none_of_the_callers_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker outlives `up`: a cloud password or CI token in up's environment stays out
    of it; where things are (paths, the tool's settings) is passed on."""
    from testbeds.targets.local.broker_service import _broker_environment

    monkeypatch.setenv("OS_PASSWORD", "s3cret")
    monkeypatch.setenv("CI_JOB_TOKEN", "t0ken")
    monkeypatch.setenv("TESTBED_STATE_DIR", "/tmp/state")
    monkeypatch.setenv("XDG_STATE_HOME", "/tmp/xdg")
    env = _broker_environment()
    assert "OS_PASSWORD" not in env and "CI_JOB_TOKEN" not in env
    assert env["TESTBED_STATE_DIR"] == "/tmp/state" and env["XDG_STATE_HOME"] == "/tmp/xdg"
    assert "PATH" in env


def test_a_recycled_pid_is_not_taken_for_the_broker(tmp_path: Path) -> None:
    """The pid file names a process that is not this instance's broker (a pid the system
    gave to something else since): no broker runs, and stopping it touches nothing."""
    import os

    from testbeds.state import StateDir
    from testbeds.targets.local.broker_service import running_broker, stop_broker

    state = StateDir("el-unit", root=tmp_path)
    (state.path / "elastic").mkdir(parents=True)
    (state.path / "elastic" / "broker.pid").write_text(f"{os.getpid()} abc\n")
    assert running_broker(state) is None
    assert stop_broker(state) is False


def test_sinfo_lines_give_each_nodes_state_and_reason() -> None:
    """One reader of sinfo's node lines for status, the check and the fault tests."""
    states = parse_sinfo(
        "elastic1|idle~|none\nelastic2|down~|resume failed: image is missing\n\nelastic3|alloc#|\n"
    )
    assert states == {
        "elastic1": SlurmNodeState("idle~"),
        "elastic2": SlurmNodeState("down~", "resume failed: image is missing"),
        "elastic3": SlurmNodeState("alloc#"),
    }
    assert [name for name, s in states.items() if s.powered_down] == ["elastic1", "elastic2"]
    assert str(states["elastic2"]) == "down~ (resume failed: image is missing)"
    assert sinfo_arguments(["elastic1", "elastic2"])[-3:] == [
        "elastic1,elastic2",
        "--format",
        "%N|%t|%E",
    ]
