"""One site playbook for every testbed: a play per role, each over its role's group; the
roles without a play are exactly those other roles depend on; the common inventory
declares every play's group; the plan fills the interlink group from the site."""

from __future__ import annotations

import yaml

from testbeds import paths
from testbeds.model.loader import available_roles
from testbeds.model.plan import resolve
from testbeds.playbook import played_roles


def dependencies() -> set[str]:
    """Roles some role's meta/main.yml pulls in."""
    found = set()
    for meta in paths.roles_dir().glob("*/meta/main.yml"):
        for dependency in yaml.safe_load(meta.read_text()).get("dependencies") or []:
            found.add(dependency["role"] if isinstance(dependency, dict) else dependency)
    return found


def test_every_role_has_a_play_unless_it_is_only_a_dependency() -> None:
    played = played_roles()
    assert len(played) == len(set(played))
    assert available_roles() - set(played) == dependencies() - set(played) == {"slurm"}


def test_the_common_inventory_declares_every_plays_group() -> None:
    hosts = yaml.safe_load((paths.inventories_dir() / "common" / "hosts.yml").read_text())
    assert list(hosts["all"]["children"]) == played_roles()


def test_every_shipped_definitions_roles_run() -> None:
    for testbed in ("data-movement", "hpc-access", "pipelines"):
        plan = resolve(testbed)
        assert {role for node in plan.nodes for role in node.roles} <= set(played_roles())


def test_the_interlink_group_is_the_login_of_the_instance_the_site_offloads_to() -> None:
    """partner-a's Kubernetes side offloads to the instance `hpc-access`: on a target that
    configures nodes, its login nodes run interlink; another instance, the Kubernetes
    target itself, or a site without it leave the group empty."""
    assert resolve("hpc-access", site="partner-a", target="openstack").groups()["interlink"] == [
        "login"
    ]
    for plan in (
        resolve("hpc-access", site="partner-a", target="openstack", instance="other"),
        resolve("hpc-access", site="partner-a", target="kubernetes"),
        resolve("hpc-access"),
    ):
        assert "interlink" not in plan.groups()
