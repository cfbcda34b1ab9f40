"""Render the Ansible inventory from provisioned nodes: same shape whatever the target."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from testbeds import paths
from testbeds.errors import DeployError
from testbeds.model.plan import Plan
from testbeds.nodes import ProvisionedNode
from testbeds.templating import templates


def render_inventory(
    plan: Plan, nodes: Sequence[ProvisionedNode], generated_vars: dict[str, Any]
) -> str:
    by_name = {n.name: n for n in nodes}
    missing = [n.name for n in plan.nodes if n.name not in by_name]
    if missing:
        raise DeployError(f"the target returned no address for: {', '.join(missing)}")
    traits = {n.name: n.traits.model_dump() for n in plan.nodes}
    text = templates.get_template("hosts.yml.j2").render(
        plan=plan,
        nodes=[by_name[n.name] for n in plan.nodes],
        groups=plan.groups(),
        traits=traits,
        generated_vars=generated_vars,
        # A node group's own vars rank above the testbed's (all:vars) in Ansible.
        group_vars={g.name: g.vars for g in plan.definition.node_groups if g.vars},
    )
    yaml.safe_load(text)  # fail here, not in Ansible, if a value broke the YAML
    return text


def inventory_sources(site: str, generated: Path) -> list[str]:
    """Layered inventories in precedence order: common, then the site, then the target's hosts."""
    base = paths.inventories_dir()
    # Files rather than folders, so that site.yml beside them is not read as an inventory;
    # Ansible still loads the group_vars/ that sit next to each file.
    return [str(base / "common" / "hosts.yml"), str(base / site / "hosts.yml"), str(generated)]
