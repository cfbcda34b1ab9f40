"""What the OpenStack elastic nodes ask of Nova (testbeds/elastic/openstack_nodes.py), with a
recording stand-in for openstacksdk's compute proxy (the same requests run against the real
services in tests/openstack/test_elastic_nodes.py)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import pytest

from testbeds.elastic.openstack_nodes import OpenStackNodes, ServerSpec
from testbeds.errors import DeployError

SPEC = ServerSpec(
    flavor_id="f-1",
    image_id="i-1",
    network_id="n-1",
    security_group_ids=("sg-internal",),
    key_name="hpc-a-key",
    server_group_id="g-1",
    user_data="#cloud-config\n",
)


@dataclass
class Server:
    name: str
    metadata: dict[str, str]
    status: str = "ACTIVE"


@dataclass
class FakeCompute:
    made: list[dict[str, Any]] = field(default_factory=list)
    existing: list[Server] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    fail: bool = False

    def create_server(self, **attrs: Any) -> Server:
        self.made.append(attrs)
        server = Server(attrs["name"], attrs["metadata"], "ERROR" if self.fail else "ACTIVE")
        self.existing.append(server)
        return server

    def wait_for_server(self, server: Server, **kwargs: Any) -> Server:
        if server.status in kwargs["failures"]:
            raise RuntimeError("server went to ERROR")
        return server

    def servers(self, **query: Any) -> list[Server]:
        wanted = query["name"].strip("^$")
        return [s for s in self.existing if s.name == wanted]

    def delete_server(self, server: Server) -> None:
        self.deleted.append(server.name)
        self.existing.remove(server)

    def wait_for_delete(self, server: Server, **kwargs: Any) -> None:
        pass


def nodes(compute: FakeCompute) -> OpenStackNodes:
    return OpenStackNodes(compute, "hpc-a", {"elastic": SPEC}, {"elastic1": "elastic"})


def test_resume_asks_for_the_groups_server_with_the_instances_marks() -> None:
    compute = FakeCompute()
    nodes(compute).resume("elastic1")
    assert compute.made == [
        {
            "name": "hpc-a-elastic1",
            "flavor_id": "f-1",
            "image_id": "i-1",
            "networks": [{"uuid": "n-1"}],
            "metadata": {
                "wp5-testbeds.instance": "hpc-a",
                "wp5-testbeds.node": "elastic1",
                "wp5-testbeds.elastic": "true",
            },
            "security_groups": [{"name": "sg-internal"}],
            "key_name": "hpc-a-key",
            "scheduler_hints": {"group": "g-1"},
            "user_data": base64.b64encode(b"#cloud-config\n").decode(),
        }
    ]


def test_a_server_that_fails_is_deleted_and_reported() -> None:
    compute = FakeCompute(fail=True)
    with pytest.raises(DeployError, match="hpc-a-elastic1 did not start"):
        nodes(compute).resume("elastic1")
    assert compute.deleted == ["hpc-a-elastic1"] and compute.existing == []


def test_only_this_instances_elastic_servers_are_deleted() -> None:
    compute = FakeCompute(
        existing=[
            Server("hpc-a-elastic1", {}),
            Server(
                "hpc-a-elastic1", {"wp5-testbeds.instance": "other", "wp5-testbeds.elastic": "true"}
            ),
            Server("hpc-a-elastic1", {"wp5-testbeds.instance": "hpc-a", "wp5-testbeds.node": "x"}),
        ]
    )
    keeper = nodes(compute)
    keeper.remove("elastic1")
    assert compute.deleted == []
    keeper.resume("elastic1")
    keeper.remove("elastic1")
    assert compute.deleted == ["hpc-a-elastic1"] and len(compute.existing) == 3


def test_nodes_other_than_the_elastic_ones_are_refused_and_gone_ones_found() -> None:
    compute = FakeCompute()
    keeper = nodes(compute)
    with pytest.raises(DeployError, match="not an elastic node"):
        keeper.resume("controller")
    assert compute.made == []
    keeper.resume("elastic1")
    assert keeper.vanished(["elastic1"]) == []
    compute.existing[0].status = "SHUTOFF"
    assert keeper.vanished(["elastic1"]) == ["elastic1"]
