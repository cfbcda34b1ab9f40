"""Baked shared content: what a role writes on a shared filesystem that no instance makes its
own (the analysis role's pinned Python environment, its generated sample dataset), built
once per machine instead of at every `up`.

A role names such folders in its meta/testbed.yml (`baked_shared`, variables holding their
paths) and writes them in its `<role>_shared` step, which also runs in every `up`. A bake
runs that step once more in its throw-away instance and imports each folder as an image of
its own, holding only that folder, under a tag that is the cache key of what made it (the
base image, the role's files, the site's inventories, the role's values); like the group
images, they belong to the definition and serve every instance of it. `up` on the local
target mounts each such image read-only at its path on every node (`podman run --mount
type=image`): the role's step finds its markers there and skips. No instance writes into
another's content, and an image that exists is whole (podman imports it in one step, and a
failed export removes it), so an interrupted bake leaves nothing half-made to mount.

Content whose path is not a plain folder on one of the definition's shared filesystems is
not baked: the role writes it where the site put it, as on the other targets."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from testbeds.errors import DeployError
from testbeds.model.plan import Plan
from testbeds.model.provenance import resolved_values, with_dependencies
from testbeds.progress import say
from testbeds.role_facts import role_facts
from testbeds.targets.local import podman
from testbeds.targets.local.baked import (
    BAKED_REPOSITORY,
    cache_key,
    role_digests,
    site_digests,
)

CONTENT_LABEL_KEY = f"{podman.LABEL_PREFIX}.baked-content"
PLAIN_PATH = re.compile(r"^/[A-Za-z0-9._/-]+$")
EXPORT_TIMEOUT_S = 1800


@dataclass(frozen=True)
class SharedContent:
    """One folder of a role's instance-free content, and the image that holds it."""

    definition: str
    role: str
    variable: str
    path: str
    image: str

    @property
    def listing_name(self) -> str:
        """How bake and push list it beside the node groups' images."""
        return f"shared {self.variable}"

    @property
    def label(self) -> str:
        """The label of this folder's images, whatever their key: a bake removes only the
        older images carrying it."""
        return f"{CONTENT_LABEL_KEY}={self.definition}/{self.variable}"

    def mount_args(self) -> list[str]:
        return ["--mount", f"type=image,source={self.image},destination={self.path}"]


def plan_roles(plan: Plan) -> frozenset[str]:
    """Every role of the definition's node groups, elastic ones included."""
    return frozenset(
        with_dependencies({role for g in plan.definition.node_groups for role in g.roles})
    )


def _on_shared_filesystem(plan: Plan, path: object) -> bool:
    if not isinstance(path, str) or not PLAIN_PATH.fullmatch(path):
        return False
    parts = PurePosixPath(path).parts
    if ".." in parts or "." in parts or path.endswith("/"):
        return False
    return any(
        PurePosixPath(path).is_relative_to(fs.path) and path != fs.path
        for fs in plan.definition.shared_filesystems
    )


def _role_values(plan: Plan, role: str) -> dict[str, object]:
    """The role's own values as its tasks get them (role default, definition, site), and
    any node group's override of them."""
    prefix = f"{role}_"
    values: dict[str, object] = {
        v.name: v.value for v in resolved_values(plan) if v.name.startswith(prefix)
    }
    for group in plan.definition.node_groups:
        for name, value in sorted(group.vars.items()):
            if name.startswith(prefix):
                values[f"{group.name}:{name}"] = value
    return values


def shared_contents(plan: Plan, base_image: str) -> tuple[SharedContent, ...]:
    """The plan's bakeable shared content, each with the tag of the image that holds it."""
    found = []
    sites = site_digests(plan)
    for role in sorted(plan_roles(plan)):
        variables = role_facts(role).baked_shared
        if not variables:
            continue
        values = _role_values(plan, role)
        grouped = [name for name in values if ":" in name]
        for variable in variables:
            path = values.get(variable)
            # A node group's own value would put the folder elsewhere on some nodes only.
            if not _on_shared_filesystem(plan, path) or any(
                name.endswith(f":{variable}") for name in grouped
            ):
                continue
            key = cache_key(
                {
                    "base": base_image,
                    "roles": role_digests([role]),
                    "sites": sites,
                    "values": values,
                    "variable": variable,
                    "format": 1,
                }
            )
            # Per definition, as its group images are: the lifecycle benchmark's copies of
            # a definition find none of the original's (a group name has no dot).
            repository = f"{BAKED_REPOSITORY}-{plan.name}-content.{variable.replace('_', '-')}"
            found.append(SharedContent(plan.name, role, variable, str(path), f"{repository}:{key}"))
    return tuple(found)


def present(contents: Iterable[SharedContent]) -> list[SharedContent]:
    return [c for c in contents if podman.image_exists(c.image)]


def mount_args(plan: Plan, base_image: str) -> list[str]:
    """podman arguments mounting every baked content of the plan that exists, read-only."""
    return [arg for c in present(shared_contents(plan, base_image)) for arg in c.mount_args()]


def export(container: str, content: SharedContent) -> None:
    """The folder as the node `container` sees it, imported as the content's image (tar
    inside the node, streamed to `podman import`); an image made from a failed export is
    removed."""
    podman_bin = podman.podman_binary()
    say(f"[{content.role}] baking {content.path} into {content.image}")
    with subprocess.Popen(
        [podman_bin, "exec", container, "tar", "-C", content.path, "-c", "."],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as tar:
        imported = subprocess.run(
            [
                podman_bin,
                "import",
                "--quiet",
                "--change",
                f"LABEL={content.label}",
                "-",
                content.image,
            ],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            timeout=EXPORT_TIMEOUT_S,
            check=False,
        )
        if tar.stdout is not None:
            tar.stdout.close()
        tar_error = tar.stderr.read().decode(errors="replace") if tar.stderr else ""
        tar_status = tar.wait(timeout=60)
    if tar_status != 0 or imported.returncode != 0:
        podman.run("rmi", "--force", content.image, check=False)
        why = tar_error.strip() if tar_status != 0 else imported.stderr.strip()
        raise DeployError(f"baking {content.path} into an image failed: {why[-300:]}")
    remove_older(content)


def _mounted_images() -> set[str]:
    """The images some container mounts (podman would remove them from under it)."""
    ids = podman.run("ps", "--all", "--quiet").stdout.split()
    if not ids:
        return set()
    return {
        mount["Source"]
        for container in podman.run_json("inspect", "--type", "container", *ids)
        for mount in container.get("Mounts") or []
        if mount.get("Type") == "image" and mount.get("Source")
    }


def remove_older(content: SharedContent) -> None:
    """This folder's images of earlier keys, unless a container still mounts one."""
    repository, _, _ = content.image.rpartition(":")
    older = [tag for tag in podman.image_tags(repository, content.label) if tag != content.image]
    if not older:
        return
    mounted = _mounted_images()
    for tag in older:
        if tag not in mounted and podman.run("rmi", tag, check=False).returncode == 0:
            say(f"removed the older baked content {tag}")
