"""The local target: one podman container with systemd per node, one network per instance."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from testbeds.errors import DeployError, PreflightError
from testbeds.model.loader import missing_site_section
from testbeds.model.plan import Plan, PlannedNode
from testbeds.nodes import ProvisionedNode
from testbeds.progress import say
from testbeds.sshconfig import Login, write_ssh_config
from testbeds.sshkeys import ensure_client_key, ssh_args, write_known_hosts
from testbeds.state import StateDir
from testbeds.targets.base import NodeStatus, NodeTarget
from testbeds.targets.local import podman, shared_content
from testbeds.targets.local.baked import BAKED_REPOSITORY, baked_image_ref
from testbeds.targets.local.broker_service import (
    BROKER_MOUNT,
    broker_socket_dir,
    elastic_node_dir,
    ensure_broker,
    stop_broker,
)
from testbeds.targets.local.elastic_status import with_elastic_rows
from testbeds.targets.local.image import ensure_base_image
from testbeds.targets.local.names import (
    container_name,
    instance_label,
    network_name,
    volume_name,
)
from testbeds.targets.local.netstate import current_stale_network_state
from testbeds.targets.local.site import LocalSite

BOOT_TIMEOUT_S = 90
# Containers of elastic nodes (started by the node broker when Slurm asks for them).
ELASTIC_LABEL_KEY = f"{podman.LABEL_PREFIX}.elastic"
ELASTIC_LABEL = f"{ELASTIC_LABEL_KEY}=true"


@dataclass(frozen=True)
class _Booted:
    node: PlannedNode
    container: str
    address: str
    host_key: str
    # The image the container was made from (an older container may predate a bake).
    image: str


# Containers are created one at a time, then boot side by side. podman 4.3 has been seen to
# hang for good when several containers mounting the same named volumes were created at
# once (a `podman run` that never returned); creating takes well under a second a node.
_CREATE_LOCK = threading.Lock()


def local_site(plan: Plan) -> LocalSite:
    if plan.site.local is None:
        raise missing_site_section(plan.site.name, "local", "local.debian_mirror")
    return plan.site.local


def base_image(plan: Plan) -> str:
    """The plan's base image, built when missing."""
    site = local_site(plan)
    return ensure_base_image(site.debian_mirror, site.debian_suite, say)


def node_group_images(plan: Plan, base: str) -> dict[str, str]:
    """The image each node group starts from: its baked image (`testbed bake`) when one
    exists for exactly these inputs, the base image otherwise."""
    images = {}
    for group in plan.definition.node_groups:
        baked = baked_image_ref(plan, group.name, base)
        images[group.name] = baked if podman.image_exists(baked) else base
    if any(image != base for image in images.values()):
        say(
            "starting from baked images: "
            + ", ".join(g for g, image in images.items() if image != base)
        )
    return images


def _provisioned(
    booted: _Booted, image: str, private_key: Path, extra_args: str, ssh_config: Path
) -> ProvisionedNode:
    """The record of a booted node: how Ansible and the checks reach it. `image` is its
    group's image now (the baked one wherever one exists)."""
    return ProvisionedNode(
        name=booted.node.name,
        group=booted.node.group,
        roles=booted.node.roles,
        address=booted.address,
        testinfra_uri=f"safe-ssh://{booted.node.name}?ssh_config={ssh_config}",
        ansible_vars={
            "ansible_host": booted.address,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(private_key),
            "ansible_ssh_common_args": extra_args,
        },
        container=booted.container,
        image=booted.image or image,
        baked=booted.image == image and image.startswith(BAKED_REPOSITORY),
    )


class LocalTarget(NodeTarget):
    name = "local"
    # Shared filesystems are podman volumes mounted into every node, so no NFS is needed.
    provides_shared_filesystems = True
    # The node broker (testbeds.elastic) starts and removes them for Slurm.
    starts_elastic_nodes = True
    # What this target cannot give for real, and what it does instead.
    hardware_notes = {
        "gpus": "emulated GPU: stand-in device files for Slurm GRES, no driver or CUDA",
        "fpgas": "emulated FPGA: an OpenCL device on the CPU (PoCL) behind Slurm GRES fpga",
        "infiniband": "no HCA: UCX and OpenMPI run over TCP",
        "scratch": "emulated NVMe: node-local scratch is a tmpfs of the declared size",
    }

    def _site(self, plan: Plan) -> LocalSite:
        return local_site(plan)

    def preflight(self, plan: Plan) -> None:
        self._site(plan)
        podman.podman_binary()
        podman.check_network_backend()
        stale = current_stale_network_state(podman.network_details)
        if stale:
            raise PreflightError(
                "podman left network state behind for networks that no longer exist; nodes "
                "on a new network could reach each other only through a stale NAT rule:\n  "
                + "\n  ".join(item.description for item in stale)
                + "\nremove it (as root) with:\n  "
                + "\n  ".join(item.command for item in stale)
            )
        label = instance_label(plan.instance)
        for node in plan.nodes:
            name = container_name(plan.instance, node.name)
            existing = podman.container_by_name(name)
            if existing is None:
                continue
            owner = (existing.get("Labels") or {}).get(podman.INSTANCE_LABEL)
            if owner != plan.instance:
                raise PreflightError(
                    f"a container named {name!r} already exists and is not part of testbed "
                    f"instance {plan.instance!r}; remove it or choose --instance"
                )
        net = network_name(plan.instance)
        if podman.network_exists(net) and net not in podman.networks(label):
            raise PreflightError(
                f"a podman network named {net!r} already exists and is not part of testbed "
                f"instance {plan.instance!r}; remove it or choose --instance"
            )

    def provision(self, plan: Plan, state: StateDir) -> list[ProvisionedNode]:
        site = self._site(plan)
        base = base_image(plan)
        images = node_group_images(plan, base)
        self._ensure_network(plan, site)
        volumes = self._ensure_volumes(plan, base)
        options = podman.detect_runtime_options()
        private_key, public_key = ensure_client_key(state)
        with ThreadPoolExecutor(max_workers=min(8, len(plan.nodes))) as pool:
            futures = [
                pool.submit(
                    self._ensure_node, plan, node, images[node.group], options, public_key, volumes
                )
                for node in plan.nodes
            ]
            booted = [f.result() for f in futures]
        known_hosts = write_known_hosts(state, [(b.address, b.host_key) for b in booted])
        extra_args = ssh_args(state)
        # The checks reach the nodes over SSH, through one shared connection per node (a
        # command costs milliseconds; `podman exec` costs a quarter of a second), with the
        # same key and the same strictly checked host keys as Ansible.
        config = write_ssh_config(
            state,
            {b.node.name: (b.address, 22) for b in booted},
            Login("root", private_key, known_hosts),
            bastion=None,
        )
        if plan.elastic_nodes:
            ensure_broker(plan.instance, state)
        return [
            _provisioned(b, images[b.node.group], private_key, extra_args, config) for b in booted
        ]

    def start_elastic_node(self, plan: Plan, state: StateDir, node: PlannedNode) -> ProvisionedNode:
        """Start one elastic node from its group's baked image, on the instance's network
        with its volumes, and return how to reach it (its host key in a known_hosts file
        of its own, so that starting nodes never rewrites the static nodes' file)."""
        site = self._site(plan)
        base = base_image(plan)
        image = baked_image_ref(plan, node.group, base)
        if not podman.image_exists(image):
            raise DeployError(
                f"node {node.name}: its group's baked image {image} is missing "
                f"(`testbed up {plan.name}` builds it)"
            )
        self._ensure_network(plan, site)
        volumes = self._ensure_volumes(plan, base)
        private_key, public_key = ensure_client_key(state)
        booted = self._ensure_node(
            plan, node, image, podman.detect_runtime_options(), public_key, volumes
        )
        folder = elastic_node_dir(state, node.name)
        known_hosts = folder / "known_hosts"
        known_hosts.write_text(f"{booted.address} {booted.host_key}\n", encoding="utf-8")
        extra_args = ssh_args(state, known_hosts)
        config = write_ssh_config(
            state,
            {node.name: (booted.address, 22)},
            Login("root", private_key, known_hosts),
            bastion=None,
            path=folder / "ssh_config",
        )
        return _provisioned(booted, image, private_key, extra_args, config)

    def remove_elastic_node(self, instance: str, node: str) -> bool:
        """Remove an elastic node's container, if this instance's elastic node has one;
        returns whether there was one."""
        name = container_name(instance, node)
        found = podman.container_by_name(name)
        labels = (found or {}).get("Labels") or {}
        if found is None or labels.get(podman.INSTANCE_LABEL) != instance:
            return False
        if labels.get(ELASTIC_LABEL_KEY) != "true":
            raise DeployError(f"container {name} is not an elastic node; not removing it")
        podman.run("rm", "--force", "--time", "5", name, timeout=120)
        return True

    def _ensure_network(self, plan: Plan, site: LocalSite) -> None:
        net = network_name(plan.instance)
        if podman.network_exists(net):
            return
        args = ["network", "create", "--label", instance_label(plan.instance)]
        if site.network_subnet:
            args += ["--subnet", site.network_subnet]
        podman.run(*args, net)

    def _ensure_volumes(self, plan: Plan, base: str) -> list[str]:
        """One labelled volume per shared filesystem, and on them, read-only, the baked
        shared content that exists (`shared_content`); returns the podman arguments that
        mount them all."""
        existing = set(podman.volumes(instance_label(plan.instance)))
        args = []
        for fs in plan.definition.shared_filesystems:
            name = volume_name(plan.instance, fs.path)
            if name not in existing:
                podman.run("volume", "create", "--label", instance_label(plan.instance), name)
            args += ["--volume", f"{name}:{fs.path}"]
        return args + shared_content.mount_args(plan, base)

    def _ensure_node(
        self,
        plan: Plan,
        node: PlannedNode,
        image: str,
        options: podman.RuntimeOptions,
        public_key: Path,
        volumes: list[str],
    ) -> _Booted:
        name = container_name(plan.instance, node.name)
        existing = podman.container_by_name(name)
        if existing is None:
            with _CREATE_LOCK:
                if podman.remove_storage_leftover(name):
                    say(f"[{node.name}] removed what an interrupted run left of {name}")
                podman.run(
                    "run",
                    "--detach",
                    "--name",
                    name,
                    "--hostname",
                    node.name,
                    "--network",
                    network_name(plan.instance),
                    "--network-alias",
                    node.name,
                    "--systemd=always",
                    *options.args(),
                    "--volume",
                    f"{public_key}:/root/.ssh/authorized_keys:ro",
                    *volumes,
                    *self._broker_mount(plan, node),
                    # Emulated GPUs are device nodes made with mknod (they cannot be opened).
                    *(["--cap-add=MKNOD"] if node.traits.gpus else []),
                    # Emulated NVMe: a tmpfs of the declared size, so Slurm sees that TmpDisk.
                    *(
                        ["--tmpfs", f"{scratch.path}:rw,size={scratch.size_gb}g,mode=0755"]
                        if (scratch := node.traits.scratch)
                        else []
                    ),
                    "--label",
                    instance_label(plan.instance),
                    "--label",
                    f"{podman.LABEL_PREFIX}.testbed={plan.name}",
                    "--label",
                    f"{podman.LABEL_PREFIX}.node={node.name}",
                    "--label",
                    f"{podman.LABEL_PREFIX}.group={node.group}",
                    *(["--label", ELASTIC_LABEL] if node.elastic else []),
                    image,
                    "/sbin/init",
                )
            say(f"[{node.name}] container {name} created")
        elif existing.get("State") != "running":
            podman.run("start", name)
            say(f"[{node.name}] container {name} started")
        self._wait_for_systemd(node.name, name)
        info = podman.inspect(name)
        address = info["NetworkSettings"]["Networks"][network_name(plan.instance)]["IPAddress"]
        # Read through podman, a channel that needs no trust in the network.
        host_key = podman.exec_(name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub")
        if host_key.returncode != 0:
            raise DeployError(
                f"node {node.name}: sshd did not start (no host key): {host_key.stderr.strip()}"
            )
        return _Booted(node, name, address, host_key.stdout.strip(), str(info.get("ImageName", "")))

    def _broker_mount(self, plan: Plan, node: PlannedNode) -> list[str]:
        """The node broker's socket folder, on the Slurm controller of a plan with elastic
        nodes: the one way slurmctld's power saving reaches what starts nodes."""
        if not plan.elastic_nodes or "slurm_controller" not in node.roles:
            return []
        folder = broker_socket_dir(StateDir(plan.instance))
        return ["--volume", f"{folder}:{BROKER_MOUNT}"]

    def _wait_for_systemd(self, node: str, name: str) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        state = ""
        while time.monotonic() < deadline:
            proc = podman.exec_(name, "systemctl", "is-system-running", timeout=15)
            state = proc.stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.5)
        raise DeployError(
            f"node {node}: systemd did not finish booting in {BOOT_TIMEOUT_S}s "
            f"(state {state!r}); see `podman logs {name}`"
        )

    def status(self, instance: str) -> list[NodeStatus]:
        """Every container of the instance, and every elastic node with its Slurm state
        (one Slurm has removed has no container: its state says so)."""
        rows = []
        for item in podman.containers(instance_label(instance)):
            labels = item.get("Labels") or {}
            rows.append(
                NodeStatus(
                    name=labels.get(f"{podman.LABEL_PREFIX}.node", "?"),
                    state=item.get("State", "unknown"),
                    detail=item.get("Status", ""),
                    elastic=labels.get(ELASTIC_LABEL_KEY) == "true",
                )
            )
        return sorted(with_elastic_rows(instance, rows), key=lambda r: r.name)

    def destroy(self, instance: str) -> list[str]:
        label = instance_label(instance)
        removed: list[str] = []
        # First the broker, so that no elastic node starts while the instance goes.
        if stop_broker(StateDir(instance, reserved_ok=True)):
            removed.append("node broker")
        names = [item["Names"][0] for item in podman.containers(label)]
        if names:
            # Stop first, then remove: a node's systemd can outlast the grace time, and a
            # forced removal then races with the container's own exit ("state improper").
            podman.run("stop", "--time", "5", *names, check=False, timeout=120)
            podman.run("rm", "--force", *names, timeout=120)
            removed += [f"container {n}" for n in names]
        for volume in podman.volumes(label):
            podman.run("volume", "rm", "--force", volume)
            removed.append(f"volume {volume}")
        for net in podman.networks(label):
            podman.run("network", "rm", "--force", net)
            removed.append(f"network {net}")
        return removed

    def leftovers(self, instance: str) -> list[str]:
        label = instance_label(instance)
        return (
            [f"container {c['Names'][0]}" for c in podman.containers(label)]
            + [f"network {n}" for n in podman.networks(label)]
            + [f"volume {v}" for v in podman.volumes(label)]
        )
