"""The site playbook: one play per role, in dependency order, each over its role's group.

Every testbed runs this one playbook; which plays do anything depends only on which nodes
the plan puts in each role's group. A role without a play (a dependency of other roles)
cannot be given to a node group: the loader refuses it."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import yaml

from testbeds import paths

SITE_PLAYBOOK = paths.PLAYBOOKS_DIR / "site.yml"


@dataclass(frozen=True)
class Play:
    name: str
    role: str


@functools.cache
def plays() -> tuple[Play, ...]:
    """The site playbook's plays in order; each must run exactly its group's role."""
    result = []
    for play in yaml.safe_load(SITE_PLAYBOOK.read_text()):
        roles = [entry["role"] for entry in play["roles"]]
        if roles != [play["hosts"]]:
            raise ValueError(
                f"{SITE_PLAYBOOK}: play {play['name']!r} must run role {play['hosts']}"
            )
        result.append(Play(play["name"], play["hosts"]))
    return tuple(result)


def played_roles() -> list[str]:
    return [play.role for play in plays()]
