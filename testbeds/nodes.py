"""The record of a provisioned node, the same whatever the target: written by the target
(nodes.json in the instance's state), read by the inventory, ssh_config and the checks."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from testbeds.state import write_json


@dataclass(frozen=True)
class ProvisionedNode:
    """A node that exists and can be reached; the same shape whatever the target, from the
    target through the inventory (nodes.json) to the checks."""

    name: str
    group: str
    roles: tuple[str, ...]
    address: str
    testinfra_uri: str
    ansible_vars: dict[str, Any] = field(default_factory=dict)
    # The local target's podman container and the image it started from (bake commits it).
    container: str = ""
    image: str = ""
    # Started from its group's baked image for the current inputs (testbeds.bake): its roles'
    # install steps are in the image, so `up` runs only the steps that make the instance.
    baked: bool = False

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["roles"] = list(self.roles)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProvisionedNode:
        return cls(**{**data, "roles": tuple(data["roles"])})


def write_nodes(path: Path, nodes: list[ProvisionedNode]) -> None:
    write_json(path, [n.as_dict() for n in nodes])


def read_nodes(path: Path) -> list[ProvisionedNode]:
    return [ProvisionedNode.from_dict(d) for d in json.loads(path.read_text(encoding="utf-8"))]
