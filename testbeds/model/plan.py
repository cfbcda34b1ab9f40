"""The resolved plan: which nodes a testbed instance has, in which groups, with which roles."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from testbeds.errors import DefinitionError
from testbeds.model.loader import definition_path, load_definition, load_site
from testbeds.model.schema import (
    NodeGroup,
    SiteProfile,
    TestbedDefinition,
    Traits,
    valid_name,
)
from testbeds.state import InstanceRecord


@dataclass(frozen=True)
class PlannedNode:
    name: str
    group: str
    roles: tuple[str, ...]
    traits: Traits
    # Started by Slurm when jobs wait for it, removed when idle (an elastic group's node
    # beyond its count); `up` never starts it.
    elastic: bool = False


@dataclass(frozen=True)
class Plan:
    definition: TestbedDefinition
    site: SiteProfile
    target: str
    instance: str
    nodes: tuple[PlannedNode, ...] = field(default=())
    # Nodes of elastic groups beyond their count: Slurm knows them, `up` does not start them.
    elastic_nodes: tuple[PlannedNode, ...] = field(default=())
    # Where the definition was read from: a shipped name, or a YAML file's absolute path.
    source: str = ""

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def roles(self) -> frozenset[str]:
        """Every role some node of the plan runs."""
        return frozenset(role for node in self.nodes for role in node.roles)

    def groups(self) -> dict[str, list[str]]:
        """Ansible groups: one per node group and one per role, each listing node names."""
        groups: dict[str, list[str]] = {}
        for node in self.nodes:
            groups.setdefault(node.group, []).append(node.name)
            for role in node.roles:
                groups.setdefault(role, []).append(node.name)
        return groups

    def record(self, bake: bool = False) -> InstanceRecord:
        """The instance record of this plan, as `up` (or a bake) starts it."""
        return InstanceRecord(
            testbed=self.name,
            definition=self.source or self.name,
            site=self.site.name,
            target=self.target,
            instance=self.instance,
            bake=bake,
        )

    def entry_node(self) -> PlannedNode:
        """The entry group's first node (a bake that builds only some groups' images may
        have none of it: then its first node)."""
        return next((n for n in self.nodes if n.group == self.definition.entry), self.nodes[0])

    def as_dict(self, hardware_notes: dict[str, str] | None = None) -> dict[str, Any]:
        """The plan as data; hardware_notes say what the target emulates (by trait name)."""
        notes = hardware_notes or {}
        return {
            "testbed": self.name,
            "instance": self.instance,
            "target": self.target,
            "site": self.site.name,
            "description": self.definition.description,
            "entry": self.entry_node().name,
            "node_groups": [
                {
                    "name": g.name,
                    "description": g.description,
                    "count": g.count,
                    "roles": list(g.roles),
                    "traits": g.traits.model_dump(),
                    "hardware_notes": g.traits.notes(notes),
                    "nodes": g.static_node_names(),
                    "max": g.max,
                    "elastic_nodes": g.elastic_node_names(),
                    "expose": [port.model_dump() for port in g.expose],
                    "vars": g.vars,
                    "origin": self.definition.origin(g.name),
                }
                for g in self.definition.node_groups
            ],
            "groups": self.groups(),
            "checks": list(self.definition.checks),
            "shared_filesystems": [fs.model_dump() for fs in self.definition.shared_filesystems],
            "vars": self.definition.vars,
            "include": [i.model_dump(mode="json") for i in self.definition.include],
            "links": [
                link.model_dump(mode="json", by_alias=True) for link in self.definition.links
            ],
        }


def build_plan(
    definition: TestbedDefinition, site: SiteProfile, target: str, instance: str | None = None
) -> Plan:
    instance = instance or definition.name
    if not valid_name(instance):
        raise DefinitionError("--instance", "instance", f"{instance!r} is not a valid name")
    offloads = offloads_here(site, target, instance)

    def planned(group: NodeGroup, names: list[str], elastic: bool) -> list[PlannedNode]:
        roles = group.roles + (("interlink",) if offloads and "slurm_login" in group.roles else ())
        return [PlannedNode(name, group.name, roles, group.traits, elastic) for name in names]

    groups = definition.node_groups
    return Plan(
        definition=definition,
        site=site,
        target=target,
        instance=instance,
        nodes=tuple(n for g in groups for n in planned(g, g.static_node_names(), False)),
        elastic_nodes=tuple(n for g in groups for n in planned(g, g.elastic_node_names(), True)),
    )


def offloads_here(site: SiteProfile, target: str, instance: str) -> bool:
    """Whether this instance is the Slurm cluster the site's Kubernetes side offloads pods
    to (`kubernetes.interlink.slurm_instance`): then its login nodes run interLink."""
    kubernetes = site.kubernetes
    return (
        target != "kubernetes"
        and kubernetes is not None
        and kubernetes.interlink is not None
        and kubernetes.interlink.slurm_instance == instance
    )


def resolve(
    testbed: str, site: str = "local", target: str | None = None, instance: str | None = None
) -> Plan:
    """Load, validate and combine a definition with a site profile."""
    definition = load_definition(testbed)
    profile = load_site(site)
    plan = build_plan(definition, profile, target or profile.default_target, instance)
    source = (
        str(definition_path(testbed).resolve()) if testbed.endswith((".yaml", ".yml")) else testbed
    )
    return replace(plan, source=source)


def resolve_stack(config: Any, target: str) -> Plan:
    """The plan a Pulumi stack's configuration names (`testbed`, `site`, `instance`): what
    every stack program starts with."""
    return resolve(
        config.require("testbed"),
        site=config.require("site"),
        target=target,
        instance=config.get("instance") or None,
    )
