"""One testbed instance as a command sees it: its plan (the definition loaded, composed and
checked once), its state folder, the target that holds it and, once provisioned, its nodes.

`up`, `bake` and a cloud program's configure step build one `Instance` and pass it from
provision through configure to the checks; nothing loads or composes the definition again
within the command. The instance's description files (the record, the plan and values the
checks read, the nodes and the inventory the roles read) are written here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from testbeds.inventory import render_inventory
from testbeds.model.plan import Plan
from testbeds.model.provenance import resolved_values
from testbeds.nodes import ProvisionedNode, write_nodes
from testbeds.state import StateDir, write_json
from testbeds.targets import get_target
from testbeds.targets.base import CheckRun, Target

MUNGE_KEY_BYTES = 1024


@dataclass
class Instance:
    plan: Plan
    state: StateDir
    target: Target
    nodes: list[ProvisionedNode] = field(default_factory=list)

    @classmethod
    def of(cls, plan: Plan, reserved_ok: bool = False) -> Instance:
        """The instance a plan names (a bake's builder has a reserved name)."""
        return cls(plan, StateDir(plan.instance, reserved_ok=reserved_ok), get_target(plan.target))

    @property
    def name(self) -> str:
        return self.plan.instance

    def write_record(self, bake: bool = False) -> None:
        """What the instance holds and where (read back by `verify`, `status` and `down`)."""
        self.state.write_record(self.plan.record(bake=bake))

    def write_description(self) -> None:
        """The plan and the values the roles are given (`testbed show --values`), for the
        checks to read."""
        write_json(self.state.path / "plan.json", self.plan.as_dict())
        write_json(self.state.values_file, {v.name: v.value for v in resolved_values(self.plan)})

    def write_inventory(self, extra_vars: dict[str, Any] | None = None) -> None:
        """Record the nodes and render the instance's inventory for them."""
        write_nodes(self.state.nodes_file, self.nodes)
        values = {**generated_vars(self.plan, self.state, self.target), **(extra_vars or {})}
        inventory = self.state.inventory_file
        inventory.parent.mkdir(parents=True, exist_ok=True)
        inventory.write_text(render_inventory(self.plan, self.nodes, values), encoding="utf-8")

    def checks(self) -> CheckRun:
        """The suites `verify` runs against this instance, from the plan in hand."""
        return self.target.checks(self.plan.definition, self.plan.record())


def generated_vars(plan: Plan, state: StateDir, target: Target) -> dict[str, Any]:
    """Values the roles get from the definition, the target and the instance's secrets.

    Secrets are passed as file paths on the control node, never as values."""
    return {
        **plan.definition.vars,
        "testbed_shared_filesystems": [
            fs.model_dump() for fs in plan.definition.shared_filesystems
        ],
        "testbed_shared_filesystems_by_target": target.provides_shared_filesystems,
        # Slurm knows every elastic node from the start where the target can start them.
        "testbed_elastic_nodes": [
            {"name": n.name, "group": n.group, "traits": n.traits.model_dump()}
            for n in plan.elastic_nodes
        ]
        if target.starts_elastic_nodes
        else [],
        "munge_key_src": str(state.secret("munge.key", MUNGE_KEY_BYTES)),
        "testbed_secrets_dir": str(state.secrets_dir),
        **plan.site.packages.as_role_vars(),
    }
