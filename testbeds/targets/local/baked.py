"""Tags of baked node-group images (see `testbeds.bake`): the cache key of what a group's
image would hold, so that any change to it gives a new tag and a stale image is never used."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from testbeds import paths
from testbeds.digests import tree_digest
from testbeds.model.plan import Plan
from testbeds.model.provenance import with_dependencies
from testbeds.playbook import plays
from testbeds.role_facts import roles_with

BAKED_REPOSITORY = "localhost/wp5-testbeds-baked"
# Steps of a role that only install software; configure steps (and their secrets) never run.
BAKE_STEPS = ("preflight", "detect", "install")


def never_baked() -> frozenset[str]:
    """Roles whose install step places per-node credentials (their meta/testbed.yml says
    `baked: false`): never baked into an image."""
    base = paths.roles_dir()
    roles = {p.name for p in base.iterdir() if (p / "tasks" / "main.yml").is_file()}
    return frozenset(roles) - roles_with("baked")


def baked_roles(roles: Iterable[str]) -> frozenset[str]:
    """The roles whose install steps a bake of nodes with these roles runs, and so whose
    install steps `up` skips on them: the roles and those they depend on (slurm_compute's
    slurm), but none that is never baked. One answer for both, so they cannot drift."""
    return frozenset(with_dependencies(set(roles)) - never_baked())


def install_tags(roles: Iterable[str]) -> list[str]:
    """The install steps a node started from a baked image has already run (in the image):
    `up` skips them and runs the steps that make the instance itself (preflight, detection,
    configuration: secrets, certificates, identities, services)."""
    return sorted(f"{role}_install" for role in baked_roles(roles))


def role_digests(roles: Iterable[str]) -> dict[str, str]:
    """The digest of every file of these roles and of the roles they depend on."""
    return {r: tree_digest(paths.roles_dir() / r) for r in sorted(with_dependencies(set(roles)))}


def site_digests(plan: Plan) -> dict[str, str]:
    """The digest of the common and the plan's site inventories (package lists live there)."""
    inventories = paths.inventories_dir()
    return {
        s: tree_digest(inventories / s)
        for s in ("common", plan.site.name)
        if (inventories / s).is_dir()
    }


def cache_key(inputs: dict[str, object]) -> str:
    """The tag of an image made from these inputs: any change to them gives a new one."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def baked_image_ref(plan: Plan, group: str, base_image: str) -> str:
    """The tag of the group's baked image for this plan, whether or not it exists.

    The key covers the base image, every file of the group's roles (and of the roles they
    depend on), the site's inventories
    (package lists live there and in role defaults), the definition's values and the
    group's plays."""
    node_group = next(g for g in plan.definition.node_groups if g.name == group)
    key = cache_key(
        {
            "base": base_image,
            # The roles their meta pulls in too (slurm_compute's slurm): their install steps run.
            "roles": role_digests(node_group.roles),
            "sites": site_digests(plan),
            "values": plan.definition.vars,
            "plays": [(play.name, play.role) for play in plays() if play.role in node_group.roles],
            "steps": BAKE_STEPS,
            "format": 2,  # 2: the dependencies' install steps are baked too
        }
    )
    return f"{BAKED_REPOSITORY}-{plan.name}-{group}:{key}"
