"""The static target: a partner site's existing hosts, reached over SSH (through a bastion
when the site has one), with host keys checked against the site's known_hosts.

The site lists its hosts in inventories/<site>/hosts.yml under the definition's node group
names, with the node names `testbed show` prints and an `ansible_host` each. Nothing is
created and `down` removes nothing: the hosts are the site's.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from testbeds.errors import DefinitionError, PreflightError
from testbeds.loader import missing_site_section, read_yaml, site_dir
from testbeds.plan import Plan
from testbeds.progress import say
from testbeds.schema import StaticSite
from testbeds.sshconfig import (
    BASTION,
    CONNECT_TIMEOUT_S,
    Bastion,
    Login,
    reached_through,
    write_ssh_config,
)
from testbeds.state import StateDir
from testbeds.targets.base import NodeStatus, ProvisionedNode


def static_site(plan: Plan) -> StaticSite:
    if plan.site.static is None:
        raise missing_site_section(plan.site.name, "static")
    return plan.site.static


def site_path(plan: Plan, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else site_dir(plan.site.name) / path


def listed_hosts(plan: Plan) -> dict[str, dict[str, Any]]:
    """Each plan node's entry in the site's hosts.yml, or an error naming the missing one."""
    path = site_dir(plan.site.name) / "hosts.yml"
    data = read_yaml(path) or {}
    children = (data.get("all") or {}).get("children") or {}
    hosts: dict[str, dict[str, Any]] = {}
    for node in plan.nodes:
        entry = ((children.get(node.group) or {}).get("hosts") or {}).get(node.name)
        field = f"all.children.{node.group}.hosts.{node.name}"
        if not isinstance(entry, dict) or not entry.get("ansible_host"):
            raise DefinitionError(path, field, "missing: every node needs an ansible_host")
        hosts[node.name] = entry
    return hosts


def ssh_config(plan: Plan, state: StateDir, hosts: dict[str, dict[str, Any]]) -> Path:
    site = static_site(plan)
    login = Login(site.user, site_path(plan, site.private_key), site_path(plan, site.known_hosts))
    bastion = (
        Bastion(site.bastion.host, site.bastion.user, site.bastion.port) if site.bastion else None
    )
    addresses = {
        name: (str(h["ansible_host"]), int(h.get("ansible_port", 22))) for name, h in hosts.items()
    }
    return write_ssh_config(state, addresses, login, bastion)


def _ssh(config: Path, node: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", str(config), "-o", "BatchMode=yes", node, command],
        capture_output=True,
        text=True,
        timeout=CONNECT_TIMEOUT_S * 3,
        check=False,
    )


class StaticTarget:
    name = "static"
    # Existing hosts: shared filesystems come from the nfs roles or the site's own share.
    provides_shared_filesystems = False
    # Real hardware: what the hosts have is what the roles detect.
    hardware_notes: dict[str, str] = {}

    def preflight(self, plan: Plan) -> None:
        site = static_site(plan)
        for field, value in (
            ("static.private_key", site.private_key),
            ("static.known_hosts", site.known_hosts),
        ):
            if not site_path(plan, value).is_file():
                raise DefinitionError(
                    site_dir(plan.site.name) / "site.yml", field, f"{value}: no such file"
                )
        listed_hosts(plan)

    def provision(self, plan: Plan, state: StateDir) -> list[ProvisionedNode]:
        hosts = listed_hosts(plan)
        config = ssh_config(plan, state, hosts)
        say(f"checking that the {len(hosts)} host(s) of site {plan.site.name} answer over SSH")
        with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
            answers = dict(
                zip(hosts, pool.map(lambda n: _ssh(config, n, "true"), hosts), strict=True)
            )
        # ssh's last lines say why (a jump that could not reach the host says so first).
        silent = {n: p.stderr.strip().splitlines()[-3:] for n, p in answers.items() if p.returncode}
        if silent:
            details = "; ".join(
                f"{n}: {' / '.join(why) or 'no answer'}" for n, why in silent.items()
            )
            raise PreflightError(
                f"host(s) of site {plan.site.name} do not answer over SSH: {details}"
            )
        site = static_site(plan)
        return [
            reached_through(
                config,
                ProvisionedNode(
                    name=node.name,
                    group=node.group,
                    roles=node.roles,
                    address=str(hosts[node.name]["ansible_host"]),
                    testinfra_uri="",
                ),
                site.user,
            )
            for node in plan.nodes
        ]

    def status(self, instance: str) -> list[NodeStatus]:
        state = StateDir(instance)
        config = state.path / "ssh_config"
        if not config.is_file():
            return []
        names = [
            line.split()[1]
            for line in config.read_text().splitlines()
            if line.startswith("Host ") and line.split()[1] != BASTION
        ]
        rows = []
        for name in names:
            ok = _ssh(config, name, "true").returncode == 0
            rows.append(NodeStatus(name, "running" if ok else "unreachable", "site host over SSH"))
        return rows

    def destroy(self, instance: str) -> list[str]:
        """The hosts belong to the site: nothing is removed, only the SSH connections closed."""
        config = StateDir(instance).path / "ssh_config"
        if config.is_file():
            for line in config.read_text().splitlines():
                if line.startswith("Host "):
                    subprocess.run(
                        ["ssh", "-F", str(config), "-O", "exit", line.split()[1]],
                        capture_output=True,
                        check=False,
                        timeout=CONNECT_TIMEOUT_S,
                    )
        return []

    def leftovers(self, instance: str) -> list[str]:
        return []
