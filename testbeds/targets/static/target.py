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
from testbeds.model.fields import check_host
from testbeds.model.loader import (
    definition_path,
    load_site,
    missing_site_section,
    read_yaml,
    site_dir,
)
from testbeds.model.plan import Plan
from testbeds.model.schema import SiteProfile
from testbeds.nodes import ProvisionedNode, read_nodes
from testbeds.progress import say
from testbeds.sshconfig import (
    BASTION,
    CONNECT_TIMEOUT_S,
    Bastion,
    Login,
    reached_through,
    write_ssh_config,
)
from testbeds.state import StateDir
from testbeds.targets.base import NodeStatus, NodeTarget
from testbeds.targets.static.site import StaticSite


def static_site(plan: Plan) -> StaticSite:
    return _static_section(plan.site)


def _static_section(profile: SiteProfile) -> StaticSite:
    if profile.static is None:
        raise missing_site_section(profile.name, "static")
    return profile.static


def site_path(plan: Plan, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else site_dir(plan.site.name) / path


def listed_hosts(plan: Plan) -> dict[str, dict[str, Any]]:
    """Each plan node's entry in the site's hosts.yml, checked as data (a host name or IP
    address, a port number), or an error naming the file and the field at fault."""
    path = site_dir(plan.site.name) / "hosts.yml"
    data = read_yaml(path) or {}
    hosts: dict[str, dict[str, Any]] = {}
    for node in plan.nodes:
        field = f"all.children.{node.group}.hosts.{node.name}"
        entry = _dig(data, ["all", "children", node.group, "hosts", node.name])
        if not isinstance(entry, dict) or not entry.get("ansible_host"):
            raise DefinitionError(path, field, "missing: every node needs an ansible_host")
        address, port = entry.get("ansible_host"), entry.get("ansible_port", 22)
        try:
            check_host(address if isinstance(address, str) else "")
        except ValueError:
            raise DefinitionError(
                path, f"{field}.ansible_host", "must be a host name or an IP address"
            ) from None
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise DefinitionError(
                path, f"{field}.ansible_port", "must be a port number from 1 to 65535"
            )
        hosts[node.name] = entry
    return hosts


def _dig(data: Any, keys: list[str]) -> Any:
    """data[k1][k2]... where every level is a mapping; None where one is not."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


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


def _listening_ports(config: Path, node: str) -> dict[tuple[str, int], str] | None:
    """(protocol, port) -> what listens there on the host; None when `ss` is missing."""
    proc = _ssh(config, node, "command -v ss >/dev/null && ss -Htlnup")
    if proc.returncode != 0:
        return None
    listening: dict[tuple[str, int], str] = {}
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) < 5 or ":" not in fields[4]:
            continue
        port = fields[4].rsplit(":", 1)[1]
        if port.isdigit():
            users = fields[6] if len(fields) > 6 else "a process"
            listening[(fields[0], int(port))] = users
    return listening


def port_clashes(plan: Plan, config: Path) -> None:
    """Refuse hosts where something already listens on a port the definition exposes.

    Only on an instance's first `up`: later, the testbed's own services listen there."""
    exposed = [
        (node.name, g_index, p_index, port)
        for g_index, group in enumerate(plan.definition.node_groups)
        for node in plan.nodes
        if node.group == group.name
        for p_index, port in enumerate(group.expose)
    ]
    nodes = sorted({name for name, *_ in exposed})
    if not nodes:
        return
    with ThreadPoolExecutor(max_workers=min(8, len(nodes))) as pool:
        found = pool.map(lambda n: _listening_ports(config, n), nodes)
        listening = dict(zip(nodes, found, strict=True))
    for node, g_index, p_index, port in exposed:
        in_use = listening[node]
        if in_use is None:
            say(f"[{node}] cannot list listening ports (no `ss`): port clashes not checked")
            continue
        users = in_use.get((port.protocol, port.port))
        if users:
            raise DefinitionError(
                definition_path(plan.source or plan.name),
                f"node_groups[{g_index}].expose[{p_index}].port",
                f"{port.port}/{port.protocol} is already in use on host {node} ({users}); "
                "free it or change the port, nothing was configured",
            )


class StaticTarget(NodeTarget):
    name = "static"
    # Existing hosts: shared filesystems come from the nfs roles or the site's own share.
    # Down leaves the hosts (and the secrets they use) in place.
    keeps_hosts = True

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
        if not state.nodes_file.exists():
            port_clashes(plan, config)
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
        if not (config.is_file() and state.nodes_file.is_file()):
            return []
        rows = []
        for node in read_nodes(state.nodes_file):
            ok = _ssh(config, node.name, "true").returncode == 0
            rows.append(
                NodeStatus(node.name, "running" if ok else "unreachable", "site host over SSH")
            )
        return rows

    def destroy(self, instance: str) -> list[str]:
        """The hosts belong to the site: nothing is removed, only the SSH connections closed
        (each node's, and the bastion's if the site has one)."""
        state = StateDir(instance)
        config = state.path / "ssh_config"
        if not (config.is_file() and state.nodes_file.is_file()):
            return []
        names = [node.name for node in read_nodes(state.nodes_file)]
        site = _static_section(load_site(state.read_record().site))
        if site.bastion is not None:
            names.append(BASTION)
        for name in names:
            subprocess.run(
                ["ssh", "-F", str(config), "-O", "exit", name],
                capture_output=True,
                check=False,
                timeout=CONNECT_TIMEOUT_S,
            )
        return []

    def leftovers(self, instance: str) -> list[str]:
        return []
