"""`testbed bake`: per-node-group images with the roles' packages already installed.

A bake brings up a throw-away instance from the base image, runs only the roles' detect,
preflight and install steps (no configuration, no secrets: the host keys and passwords
come later, at `up`), commits one node of each group as that group's image, and removes
the instance. `up` on the local target then starts each node from its group's baked image
when one exists with the same cache key, and where every node did, skips the roles' install
steps (`targets.baked.install_tags`): only the steps that make the instance itself run.

The cache key covers the base image, every file of the group's roles (and of those they
pull in) and of the site's inventories (package lists live there and in role defaults) and
the definition's values, so any change to what would be installed gives a new tag.
A new tag's image replaces the group's older ones (images carrying the group's bake label,
none a container still runs from), so stale bakes do not fill the disk.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import replace

from testbeds.definition_playbook import run_definition_playbook
from testbeds.errors import DeployError, PreflightError
from testbeds.instance import Instance
from testbeds.locks import instance_lock
from testbeds.model.plan import Plan
from testbeds.model.provenance import with_dependencies
from testbeds.model.schema import NodeGroup
from testbeds.nodes import ProvisionedNode
from testbeds.progress import heartbeat, say
from testbeds.state import RESERVED_PREFIX, StateDir, Timings
from testbeds.targets import get_target
from testbeds.targets.base import Target
from testbeds.targets.local import podman, shared_content
from testbeds.targets.local.baked import BAKE_STEPS, baked_image_ref, baked_roles
from testbeds.targets.local.names import container_name, network_name
from testbeds.targets.local.target import base_image

# What makes a node itself, removed before its container becomes an image: every node
# started from the image generates its own host keys (sshd's ExecStartPre), machine id
# and random seed on first boot.
NODE_IDENTITY_CLEANUP = (
    "apt-get clean; rm -rf /root/.cache/pip; "
    "rm -f /etc/ssh/ssh_host_* /var/lib/systemd/random-seed /var/lib/dbus/machine-id; "
    ": > /etc/machine-id"
)


COMMITS_AT_ONCE = 4
BAKED_LABEL = f"{podman.LABEL_PREFIX}.image=baked"


def group_label(definition: str, group: str) -> str:
    """The label of one node group's baked images: a bake removes only images carrying it
    (image names alone could be shared: definition `a` with group `b-c`, `a-b` with `c`)."""
    return f"{podman.LABEL_PREFIX}.baked-group={definition}/{group}"


def _commit(definition: str, node: ProvisionedNode, image: str) -> None:
    """The node's container, without package caches and without what makes a node itself,
    as its group's image; the group's images of earlier keys are then removed."""
    label = group_label(definition, node.group)
    podman.exec_(node.container, "sh", "-c", NODE_IDENTITY_CLEANUP)
    podman.run(
        "commit",
        "--quiet",
        "--pause",
        "--change",
        "CMD=/sbin/init",
        "--change",
        f"LABEL={BAKED_LABEL}",
        "--change",
        f"LABEL={label}",
        node.container,
        image,
        timeout=600,
    )
    say(f"[{node.group}] baked {image}")
    _remove_older_bakes(image, label)


def _remove_older_bakes(image: str, label: str) -> None:
    """Images of earlier keys are never used again by `up`; one a container still runs from
    is refused by podman and goes at a later bake."""
    repository, _, _ = image.rpartition(":")
    for older in podman.image_tags(repository, label):
        if older != image and podman.run("rmi", older, check=False).returncode == 0:
            say(f"removed the older baked image {older}")


def builder_instance(plan: Plan) -> str:
    """The bake's own instance: a name with a dot, which no user instance can have."""
    return f"{RESERVED_PREFIX}{plan.name}"


def refuse_existing_builder(builder: Plan) -> None:
    """A bake only ever removes what it made: anything already carrying the builder's
    names (left by a bake that was killed, or made by hand) stops it."""
    found: list[str] = []
    for node in builder.nodes:
        name = container_name(builder.instance, node.name)
        if podman.container_by_name(name) is not None:
            found.append(f"container {name}")
    net = network_name(builder.instance)
    if podman.network_exists(net):
        found.append(f"network {net}")
    label = f"{podman.INSTANCE_LABEL}={builder.instance}"
    found += [f"volume {v}" for v in podman.volumes(label)]
    state = StateDir(builder.instance, reserved_ok=True)
    if state.path.exists():
        found.append(f"state {state.path}")
    if found:
        raise PreflightError(
            f"bake's builder instance {builder.instance!r} already exists ({', '.join(found)}), "
            "left by a bake that was stopped; check and remove it "
            f"(podman rm -f / podman network rm / podman volume rm, rm -r {state.path}), "
            "then bake again"
        )


def bake_tags(plan: Plan) -> list[str]:
    """The steps a bake runs: those of `baked_roles`, whose install steps `up` then skips."""
    roles = sorted(baked_roles(plan.roles))
    return [f"{role}_{step}" for role in roles for step in BAKE_STEPS]


def bake(
    plan: Plan,
    verbose: bool = False,
    command: str = "testbed bake",
    groups: frozenset[str] | None = None,
) -> dict[str, str]:
    """Build the baked image of every node group (of `groups`, if given) that lacks one;
    returns group -> tag."""
    if plan.target != "local":
        raise PreflightError(f"bake builds images for the local target, not {plan.target!r}")
    target = get_target("local")
    base = base_image(plan)
    wanted = {
        g.name: baked_image_ref(plan, g.name, base)
        for g in plan.definition.node_groups
        if groups is None or g.name in groups
    }
    missing = {g: ref for g, ref in wanted.items() if not podman.image_exists(ref)}
    # A bake of some groups only (an elastic group's, beside an `up`) leaves the shared
    # content alone: nodes being created may be mounting it.
    contents = shared_content.shared_contents(plan, base) if groups is None else ()
    missing_contents = [c for c in contents if not podman.image_exists(c.image)]
    made = {**wanted, **{c.listing_name: c.image for c in contents}}
    if not missing and not missing_contents:
        say(f"every node group of {plan.name} has a baked image already")
        return made
    # One node of each group, as a plain node (an elastic group may have none always up),
    # and one of a group with each role whose shared content is missing.
    every_node = (*plan.nodes, *plan.elastic_nodes)
    build_groups = list(missing)
    for role in sorted({c.role for c in missing_contents}):
        holders = [g.name for g in plan.definition.node_groups if role in _roles_of(g)]
        if not set(holders) & set(build_groups):
            build_groups.append(holders[0])
    builder = replace(
        plan,
        instance=builder_instance(plan),
        nodes=tuple(
            replace(next(n for n in every_node if n.group == group), elastic=False)
            for group in build_groups
        ),
        elastic_nodes=(),
    )
    with instance_lock(builder.instance, command, reserved_ok=True):
        target.preflight(builder)
        refuse_existing_builder(builder)
        _build(target, plan, builder, missing, missing_contents, verbose)
    return made


def _roles_of(node_group: NodeGroup) -> set[str]:
    """The group's roles and those they pull in (whose steps run on its nodes too)."""
    return with_dependencies(set(node_group.roles))


def _build(
    target: Target,
    plan: Plan,
    builder: Plan,
    missing: dict[str, str],
    missing_contents: list[shared_content.SharedContent],
    verbose: bool,
) -> None:
    instance = Instance(builder, StateDir(builder.instance, reserved_ok=True), target)
    timings = Timings()
    try:
        instance.write_record(bake=True)
        say(
            f"baking {len(missing)} group image(s) of {plan.name}: "
            f"{', '.join(sorted(missing)) or 'none'}"
            + "".join(f"; shared {c.path}" for c in missing_contents)
        )
        with timings.phase("provision"):
            instance.nodes = target.provision(builder, instance.state)
        instance.write_inventory({"testbed_baking": True})
        shared_tags = sorted({f"{c.role}_shared" for c in missing_contents})
        with timings.phase("install"):
            result = run_definition_playbook(instance, verbose, bake_tags(builder) + shared_tags)
        if not result.ok:
            details = "\n  ".join(result.failures) or f"see {result.artifacts}"
            raise DeployError(f"baking {plan.name} failed:\n  {details}")
        if missing_contents:
            exporting_since = time.monotonic()
            with (
                timings.phase("shared content"),
                heartbeat(
                    lambda: (
                        "baking the shared content "
                        f"({time.monotonic() - exporting_since:.0f}s so far)"
                    )
                ),
            ):
                for content in missing_contents:
                    shared_content.export(instance.nodes[0].container, content)
        # One commit per group, side by side: each writes its own layer, mostly waiting on
        # the disk (one after another they took 89 s for hpc-access's four groups).
        started = time.monotonic()
        commits: list[Future[None]] = []

        def committing() -> str:
            done = sum(commit.done() for commit in commits)
            return (
                f"committing the images: {done} of {len(missing)} done "
                f"({time.monotonic() - started:.0f}s so far)"
            )

        with (
            timings.phase("commit"),
            heartbeat(committing),
            ThreadPoolExecutor(max_workers=max(1, min(COMMITS_AT_ONCE, len(missing)))) as pool,
        ):
            commits += [
                pool.submit(_commit, plan.name, node, missing[node.group])
                for node in instance.nodes
                if node.group in missing
            ]
            for done in as_completed(commits):
                done.result()
    finally:
        target.destroy(builder.instance)
        instance.state.remove()
    say("bake: " + "  ".join(f"{k} {v:.1f}s" for k, v in timings.phases.items()))
