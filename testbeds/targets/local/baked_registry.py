"""Baked images travel: `testbed bake NAME --push REGISTRY` copies each node group's baked
image to an OCI registry a site or CI names, and `testbed up NAME --baked-from REGISTRY`
fetches the ones this machine lacks, by the same content-addressed tags (the cache key of
what the image holds), so a CI job elsewhere starts from images built once.

Registry credentials are podman's own (`podman login`, or REGISTRY_AUTH_FILE): none is
ever on a command line here. TLS is verified, except for a registry on this machine's
loopback, where traffic never leaves it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from testbeds.errors import PreflightError, UsageError
from testbeds.model.plan import Plan
from testbeds.progress import say
from testbeds.targets.local import podman
from testbeds.targets.local.baked import baked_image_ref
from testbeds.targets.local.image import image_ref
from testbeds.targets.local.shared_content import shared_contents
from testbeds.targets.local.target import local_site

# host[:port][/path]: a name or IPv4 address or [IPv6], an optional port, an optional
# namespace of lowercase path components. Nothing else reaches podman.
REGISTRY = re.compile(
    r"^(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:]{2,39}\])"
    r"(?::(?P<port>[0-9]{1,5}))?(?P<path>(?:/[a-z0-9][a-z0-9._-]{0,63}){0,4})$"
)
LOOPBACK = frozenset({"localhost", "127.0.0.1", "[::1]"})
LOCAL_PREFIX = "localhost/"
# What podman says when a registry has no such image (or tag).
NOT_THERE = re.compile(r"manifest unknown|not found|name unknown|404", re.IGNORECASE)


@dataclass(frozen=True)
class Registry:
    """A registry as given on the command line, checked."""

    address: str
    loopback: bool

    @classmethod
    def parse(cls, text: str, option: str) -> Registry:
        found = REGISTRY.fullmatch(text)
        if found is None or (found["port"] and not 0 < int(found["port"]) < 65536):
            raise UsageError(
                f"{option}: {text[:100]!r} is not a registry (host[:port][/namespace])"
            )
        return cls(text, found["host"] in LOOPBACK)

    def ref(self, local_ref: str) -> str:
        """Where a baked image (localhost/wp5-testbeds-baked-...:key) lives in the registry."""
        return f"{self.address}/{local_ref.removeprefix(LOCAL_PREFIX)}"

    def tls(self) -> list[str]:
        return ["--tls-verify=false"] if self.loopback else []


def baked_refs(plan: Plan) -> dict[str, str]:
    """Each node group's baked image tag for this plan, and each of its baked shared
    contents' (the base image is named, not built)."""
    site = local_site(plan)
    base = image_ref(site.debian_mirror, site.debian_suite)
    groups = {g.name: baked_image_ref(plan, g.name, base) for g in plan.definition.node_groups}
    contents = {c.listing_name: c.image for c in shared_contents(plan, base)}
    return groups | contents


def push(registry: Registry, images: dict[str, str]) -> dict[str, str]:
    """Copy each group's baked image to the registry; returns group -> its registry ref."""
    pushed = {}
    for group, local in sorted(images.items()):
        remote = registry.ref(local)
        say(f"[{group}] pushing {remote}")
        podman.run("push", "--quiet", *registry.tls(), local, f"docker://{remote}", timeout=1800)
        pushed[group] = remote
    return pushed


def pull_missing(plan: Plan, registry: Registry) -> dict[str, str]:
    """Fetch every baked image of this plan that this machine lacks, under its local tag;
    a tag the registry lacks stops here, before anything is created."""
    fetched = {}
    for group, local in sorted(baked_refs(plan).items()):
        if podman.image_exists(local):
            continue
        remote = registry.ref(local)
        say(f"[{group}] pulling {remote}")
        pulled = podman.run("pull", "--quiet", *registry.tls(), remote, check=False, timeout=1800)
        if pulled.returncode != 0:
            why = pulled.stderr.strip().splitlines()[-1:] or ["no answer"]
            hint = (
                f"bake and push it first: testbed bake {plan.name} --push {registry.address}"
                if NOT_THERE.search(pulled.stderr)
                else why[0][-300:]
            )
            raise PreflightError(f"--baked-from: {registry.address} has no {remote}: {hint}")
        podman.run("tag", remote, local)
        podman.run("untag", local, remote)
        fetched[group] = local
    return fetched
