"""Typed schema of testbed definitions and of site profiles, whose target sections each
target package owns (targets/<target>/site.py); every default lives in these models."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from testbeds.model.fields import (
    GROUP_NAME_PATTERN,
    MIRROR_PATTERN,
    NAME_PATTERN,
    NODE_GROUP_PATTERN,
    RESERVED_VAR_PREFIXES,
    VAR_NAME_PATTERN,
    Name,
    Strict,
    TargetName,
)
from testbeds.model.site_sections import section_models

if TYPE_CHECKING:
    # For the type checker only: at run time SiteProfile.ready() takes them from the
    # registry of site sections.
    from testbeds.targets.kubernetes.site import KubernetesSite
    from testbeds.targets.local.site import LocalSite
    from testbeds.targets.openstack.site import OpenStackSite
    from testbeds.targets.static.site import StaticSite


class Scratch(Strict):
    """Node-local scratch (NVMe/SSD): each job gets its own directory there, removed at its end."""

    size_gb: int = Field(ge=1, le=1_000_000, description="size Slurm advertises as TmpDisk")
    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9_/.-]+$")] = "/scratch"


class Traits(Strict):
    """Hardware a node of the group has (or, on the local target, emulates)."""

    cpus: int = Field(default=1, ge=1, le=1024, description="CPU cores Slurm may schedule")
    memory_mb: int = Field(default=1024, ge=256, description="memory Slurm may schedule, in MB")
    gpus: int = Field(default=0, ge=0, le=16, description="GPUs per node")
    gpu_model: str = Field(default="", pattern=r"^[a-z0-9_]*$", description="GRES type, e.g. a100")
    infiniband: bool = Field(default=False, description="node has (or expects) an InfiniBand HCA")
    fpgas: int = Field(default=0, ge=0, le=16, description="FPGA cards per node")
    fpga_model: str = Field(default="", pattern=r"^[a-z0-9_]*$", description="GRES type, e.g. u250")
    scratch: Scratch | None = Field(default=None, description="node-local scratch disk")
    features: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$")], ...] = ()

    @model_validator(mode="after")
    def _model_needs_devices(self) -> Traits:
        if self.gpu_model and self.gpus == 0:
            raise ValueError("gpu_model is set but gpus is 0")
        if self.fpga_model and self.fpgas == 0:
            raise ValueError("fpga_model is set but fpgas is 0")
        return self

    def notes(self, hardware_notes: Mapping[str, str]) -> list[str]:
        """What a target says about the hardware traits this group has (e.g. emulated)."""
        return [
            hardware_notes[trait]
            for trait in HARDWARE_TRAITS
            if trait in hardware_notes and getattr(self, trait)
        ]


# Traits a target may have to emulate, by name (plan and graph list what each group has).
HARDWARE_TRAITS = ("gpus", "fpgas", "infiniband", "scratch")


class ExposedPort(Strict):
    """A service port users reach from outside the testbed (opened only where declared)."""

    port: int = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"
    description: str = ""


class NodeGroup(Strict):
    """A set of identical nodes: same roles, same traits."""

    name: Annotated[str, Field(pattern=NODE_GROUP_PATTERN)]
    description: str = ""
    max: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="elastic group: Slurm knows this many nodes from the start; those beyond "
        "`count` (or `min`, the same) are started when jobs wait for them and removed when "
        "idle (power saving)",
    )
    count: int = Field(
        default=1, ge=0, le=256, description="nodes always running (0 only in an elastic group)"
    )
    roles: tuple[Annotated[str, Field(pattern=GROUP_NAME_PATTERN)], ...] = Field(min_length=1)
    traits: Traits = Traits()
    anti_affinity: bool = Field(
        default=False, description="spread the group's nodes over different hypervisors"
    )
    expose: tuple[ExposedPort, ...] = Field(
        default=(), description="ports reachable from the site's allowed networks"
    )
    vars: dict[Annotated[str, Field(pattern=VAR_NAME_PATTERN)], Any] = Field(
        default_factory=dict,
        description="Ansible variables for this group's nodes only (over the testbed's vars)",
    )

    @field_validator("vars")
    @classmethod
    def _no_reserved_group_vars(cls, values: dict[str, Any]) -> dict[str, Any]:
        return _no_reserved(values)

    @model_validator(mode="before")
    @classmethod
    def _min_is_count(cls, data: Any) -> Any:
        """An elastic group may give its bounds as `min`/`max`: `min` is `count` (the nodes
        always running) under the name autoscalers use; one of the two, not both."""
        if not isinstance(data, dict) or "min" not in data:
            return data
        given = {key: value for key, value in data.items() if key != "min"}
        low = data["min"]
        if "count" in data:
            raise ValueError("min: give min or count (the same number), not both")
        if data.get("max") is None:
            raise ValueError("min: only an elastic group has one (add max, or use count)")
        if type(low) is not int or low < 0:
            raise ValueError(f"min: {low!r} is not a whole number of nodes (0 or more)")
        high = data["max"]
        if type(high) is int and low >= high:
            raise ValueError(f"min: {low} is not below max ({high}): no node would be elastic")
        return {**given, "count": low}

    @field_validator("roles")
    @classmethod
    def _roles_unique(cls, roles: tuple[str, ...]) -> tuple[str, ...]:
        dupes = sorted({r for r in roles if roles.count(r) > 1})
        if dupes:
            raise ValueError(f"role listed twice: {', '.join(dupes)}")
        return roles

    @field_validator("count")
    @classmethod
    def _below_max(cls, count: int, info: ValidationInfo) -> int:
        # `max` is declared first, so it is known here (unless it was refused itself).
        maximum = info.data.get("max")
        if maximum is None and "max" in info.data and count == 0:
            raise ValueError("0 nodes needs max (an elastic group) or at least 1")
        if maximum is not None and count >= maximum:
            raise ValueError(f"{count} is not below max ({maximum}): no node would be elastic")
        return count

    @property
    def elastic(self) -> bool:
        return self.max is not None

    def node_names(self) -> list[str]:
        """Every node of the group: those always running, then the elastic ones."""
        if self.max is None and self.count == 1:
            return [self.name]
        return [f"{self.name}{i}" for i in range(1, (self.max or self.count) + 1)]

    def static_node_names(self) -> list[str]:
        """The nodes `up` starts and keeps running."""
        return self.node_names()[: self.count]

    def elastic_node_names(self) -> list[str]:
        """The nodes Slurm starts when jobs wait for them and stops when they idle."""
        return self.node_names()[self.count :]


class SharedFilesystem(Strict):
    """A directory every node sees: a podman volume locally, NFS from `server` elsewhere."""

    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9_/.-]+$")]
    server: str = Field(
        description="node group that serves it where the target has no shared volume"
    )
    size_gb: int = Field(default=10, ge=1)


def _no_reserved(values: dict[str, Any]) -> dict[str, Any]:
    reserved = sorted(k for k in values if k.startswith(RESERVED_VAR_PREFIXES))
    if reserved:
        raise ValueError(
            f"{reserved[0]!r} may not be set by a definition: ansible_* (connection, "
            "privilege) and testbed_* variables are the tool's"
        )
    return values


class Include(Strict):
    """Another testbed whose node groups this one takes in (composition)."""

    testbed: Name = Field(description="a shipped testbed definition, by name")
    node_groups: tuple[Annotated[str, Field(pattern=NODE_GROUP_PATTERN)], ...] = Field(
        default=(), description="the groups taken in (default: all of them)"
    )


GroupName = Annotated[str, Field(pattern=NODE_GROUP_PATTERN)]


class Link(Strict):
    """Traffic a composition lets through between node groups of different included
    testbeds: the `from` groups' nodes may open these ports on the `to` group's nodes.
    Groups of one testbed reach each other freely; across testbeds only links pass (where
    the target filters: security groups on OpenStack)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    sources: tuple[GroupName, ...] = Field(alias="from", min_length=1)
    to: GroupName
    ports: tuple[ExposedPort, ...] = Field(min_length=1)
    description: str = ""


class TestbedDefinition(Strict):
    """One testbed, the single source of truth every target derives from."""

    __test__ = False

    name: Name
    description: str
    checks: tuple[Annotated[str, Field(pattern=GROUP_NAME_PATTERN)], ...] = Field(min_length=1)
    entry: str = Field(description="node group users log in to (bastion / floating IP)")
    node_groups: tuple[NodeGroup, ...] = Field(min_length=1)
    shared_filesystems: tuple[SharedFilesystem, ...] = ()
    vars: dict[Annotated[str, Field(pattern=VAR_NAME_PATTERN)], Any] = Field(
        default_factory=dict, description="Ansible variables for every node (sites may override)"
    )
    include: tuple[Include, ...] = Field(
        default=(),
        description="testbeds composed into this one: one network, CA, identity and inventory",
    )
    links: tuple[Link, ...] = Field(
        default=(),
        description="what passes between the included testbeds' node groups (composition)",
    )

    @field_validator("vars")
    @classmethod
    def _no_reserved_vars(cls, values: dict[str, Any]) -> dict[str, Any]:
        return _no_reserved(values)

    def origin(self, group: str) -> str:
        """The included testbed a node group comes from, or this testbed's own name."""
        for included in self.include:
            if group in included.node_groups:
                return included.testbed
        return self.name

    def _elastic_groups_serve_nobody(self) -> None:
        """Nodes of an elastic group come and go: nothing else may depend on them."""
        for group in self.node_groups:
            if not group.elastic:
                continue
            where = f"node_groups[{group.name}].max"
            if group.name == self.entry:
                raise ValueError(f"{where}: the entry group (users log in there) cannot be elastic")
            served = [fs.path for fs in self.shared_filesystems if fs.server == group.name]
            if served:
                raise ValueError(f"{where}: an elastic group cannot serve {served[0]}")
            if any(link.to == group.name for link in self.links):
                raise ValueError(
                    f"{where}: a link leads to this group; an elastic group serves nobody"
                )
            if "slurm_compute" not in group.roles:
                raise ValueError(
                    f"{where}: only Slurm compute nodes can be elastic (Slurm starts and "
                    "stops them); add the role slurm_compute or drop max"
                )

    @model_validator(mode="after")
    def _names_consistent(self) -> TestbedDefinition:
        groups = [g.name for g in self.node_groups]
        dupes = sorted({g for g in groups if groups.count(g) > 1})
        if dupes:
            raise ValueError(f"node_groups: node group name used twice: {', '.join(dupes)}")
        seen: dict[str, str] = {}
        for group in self.node_groups:
            for node in group.node_names():
                if node in seen:
                    raise ValueError(
                        f"node_groups: node name {node!r} of group {group.name!r} clashes with "
                        f"group {seen[node]!r}"
                    )
                seen[node] = group.name
        role_names = {r for g in self.node_groups for r in g.roles}
        clash = role_names & set(groups)
        if clash:
            raise ValueError(
                f"node_groups: node group named like a role: {', '.join(sorted(clash))}"
            )
        if self.entry not in groups:
            raise ValueError(f"entry: {self.entry!r} is not a node group ({', '.join(groups)})")
        self._elastic_groups_serve_nobody()
        if self.links and not self.include:
            raise ValueError(
                "links: links join included testbeds, and this definition includes none"
            )
        for link in self.links:
            unknown = sorted({link.to, *link.sources} - set(groups))
            if unknown:
                raise ValueError(f"links: link to {link.to}: no node group {unknown[0]!r}")
        paths = [fs.path for fs in self.shared_filesystems]
        for fs in self.shared_filesystems:
            if fs.server not in groups:
                raise ValueError(
                    f"shared_filesystems: {fs.path}: server {fs.server!r} is not a node group"
                )
            if paths.count(fs.path) > 1:
                raise ValueError(f"shared_filesystems: {fs.path} listed twice")
        # Slurm has one TmpFS for the whole cluster.
        scratch_paths = sorted(
            {g.traits.scratch.path for g in self.node_groups if g.traits.scratch}
        )
        if len(scratch_paths) > 1:
            raise ValueError(
                f"node_groups: scratch paths differ between groups: {', '.join(scratch_paths)}"
            )
        if scratch_paths and scratch_paths[0] in paths:
            raise ValueError(
                f"node_groups: scratch path {scratch_paths[0]} is also a shared filesystem"
            )
        return self


# A proxy or package index by address only: no user:password@ (it would sit in node files).
ProxyURL = Annotated[str, Field(pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$")]
NoProxyEntry = Annotated[str, Field(pattern=r"^\.?[A-Za-z0-9.:/-]{1,253}$")]


class PackageSources(Strict):
    """How nodes reach package repositories at a site that is offline or behind a proxy: apt
    and pip on every node use these (the local target's base image takes its Debian mirror
    from `local.debian_mirror`)."""

    http_proxy: ProxyURL | None = Field(default=None, description="proxy for http:// downloads")
    https_proxy: ProxyURL | None = Field(
        default=None, description="proxy for https:// downloads (default: http_proxy)"
    )
    no_proxy: tuple[NoProxyEntry, ...] = Field(
        default=(), description="hosts, domains (.example.org) and networks reached directly"
    )
    pip_index_url: Annotated[str, Field(pattern=MIRROR_PATTERN)] | None = Field(
        default=None, description="a PyPI mirror (its /simple URL) pip uses instead of pypi.org"
    )

    def as_role_vars(self) -> dict[str, object]:
        return {
            "common_http_proxy": self.http_proxy or "",
            "common_https_proxy": self.https_proxy or self.http_proxy or "",
            "common_no_proxy": list(self.no_proxy),
            "common_pip_index_url": self.pip_index_url or "",
        }


class SiteProfile(Strict):
    """Site-specific values layered on top of a definition (inventories/<site>/site.yml)."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: str = ""
    default_target: TargetName = "local"
    local: LocalSite | None = None
    openstack: OpenStackSite | None = None
    static: StaticSite | None = None
    kubernetes: KubernetesSite | None = None
    packages: PackageSources = Field(default_factory=PackageSources)

    def __init__(self, **data: Any) -> None:
        type(self).ready()
        super().__init__(**data)

    @classmethod
    def model_validate(cls, obj: Any, **options: Any) -> Self:
        cls.ready()
        return super().model_validate(obj, **options)

    @classmethod
    def ready(cls) -> None:
        """Put each target's section model in place (site_sections.py), once."""
        if not cls.__pydantic_complete__:
            models = section_models()
            cls.model_rebuild(_types_namespace={m.__name__: m for m in models.values()})


def valid_name(name: str) -> bool:
    return re.match(NAME_PATTERN, name) is not None
