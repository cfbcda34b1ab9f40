"""Running the definition's playbook against an instance: `up`'s configure step and the
bake's install steps both do."""

from __future__ import annotations

from testbeds.instance import Instance
from testbeds.inventory import inventory_sources
from testbeds.playbook import SITE_PLAYBOOK
from testbeds.progress import say
from testbeds.runner import PlaybookResult, run_playbook
from testbeds.targets.local.baked import install_tags


def run_definition_playbook(
    instance: Instance, verbose: bool = False, tags: list[str] | None = None, full: bool = False
) -> PlaybookResult:
    """Run the definition's playbook against the instance's inventory. Where every node
    started from its group's current baked image, the roles' install steps (already in the
    images) are skipped, unless `full` asks for every step (which then proves the images
    hold what the install steps would do: they change nothing)."""
    nodes = instance.nodes
    skip = None
    if nodes and all(n.baked for n in nodes) and tags is None and not full:
        skip = install_tags(r for n in nodes for r in n.roles)
        say(f"every node runs its group's baked image: skipping {len(skip)} install steps")
    return run_playbook(
        SITE_PLAYBOOK,
        inventory_sources(instance.plan.site.name, instance.state.inventory_file),
        instance.state.runner_dir,
        forks=max(5, len(nodes)),
        verbose=verbose,
        tags=tags,
        skip_tags=skip,
        baked_hosts=frozenset(n.name for n in nodes if n.baked),
    )
