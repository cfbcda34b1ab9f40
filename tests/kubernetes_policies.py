"""Policies for everything that would reach a cluster, as functions that list violations.

Each takes plain Kubernetes objects (rendered chart output or the program's own) and
returns one line per violation, empty when the objects comply, so a test can assert on
real output and on deliberately bad objects alike."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from typing import Any

# Pod Security Standards, https://kubernetes.io/docs/concepts/security/pod-security-standards/
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def name_of(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod spec(s) an object makes pods from."""
    if obj["kind"] == "Pod":
        return [obj["spec"]]
    if obj["kind"] in WORKLOADS:
        return [obj["spec"]["template"]["spec"]]
    if obj["kind"] == "CronJob":
        return [obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    return []


def containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in CONTAINER_LISTS:
        yield from spec.get(key) or []


def pod_security(spec: dict[str, Any], level: str) -> list[str]:
    """What keeps this pod spec from meeting Pod Security `baseline` or `restricted`."""
    problems = [f"{key} is set" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    pod = spec.get("securityContext") or {}
    problems += _context_problems("pod", pod)
    for sysctl in pod.get("sysctls") or []:
        if sysctl["name"] not in SAFE_SYSCTLS:
            problems.append(f"sysctl {sysctl['name']} is not a safe one")
    for volume in spec.get("volumes") or []:
        kind = next(k for k in volume if k != "name")
        if kind == "hostPath":
            problems.append(f"volume {volume['name']} is a hostPath")
        elif level == "restricted" and kind not in RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']} is of type {kind}")
    for container in containers(spec):
        where = f"container {container['name']}"
        context = container.get("securityContext") or {}
        problems += _context_problems(where, context)
        if context.get("privileged"):
            problems.append(f"{where} is privileged")
        if context.get("procMount", "Default") != "Default":
            problems.append(f"{where} has procMount {context['procMount']}")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            problems.append(f"{where} binds a host port")
        added = set((context.get("capabilities") or {}).get("add") or [])
        allowed = BASELINE_CAPABILITIES if level == "baseline" else {"NET_BIND_SERVICE"}
        if added - allowed:
            problems.append(f"{where} adds capabilities {sorted(added - allowed)}")
        if level != "restricted":
            continue
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where} does not set allowPrivilegeEscalation: false")
        if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{where} does not drop ALL capabilities")
        if not context.get("runAsNonRoot", pod.get("runAsNonRoot")):
            problems.append(f"{where} may run as root (runAsNonRoot unset)")
        seccomp = context.get("seccompProfile") or pod.get("seccompProfile") or {}
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where} has no RuntimeDefault or Localhost seccomp profile")
    return problems


def _context_problems(where: str, context: dict[str, Any]) -> list[str]:
    """Settings baseline forbids at pod and container level alike."""
    problems = []
    if context.get("runAsUser") == 0:
        problems.append(f"{where} runs as UID 0")
    if (context.get("seccompProfile") or {}).get("type") == "Unconfined":
        problems.append(f"{where} is seccomp Unconfined")
    if (context.get("appArmorProfile") or {}).get("type") == "Unconfined":
        problems.append(f"{where} is AppArmor Unconfined")
    if (context.get("windowsOptions") or {}).get("hostProcess"):
        problems.append(f"{where} is a Windows host process")
    selinux = context.get("seLinuxOptions") or {}
    if selinux.get("user") or selinux.get("role"):
        problems.append(f"{where} sets an SELinux user or role")
    return problems


def exposed_services(objs: Iterable[dict[str, Any]], allowed: Iterable[str]) -> list[str]:
    """Services reachable from outside the cluster of a type the site does not allow."""
    allowed = set(allowed)
    return [
        f"{name_of(o)} is {o['spec']['type']}"
        for o in objs
        if o["kind"] == "Service"
        and o["spec"].get("type", "ClusterIP") not in ({"ClusterIP"} | allowed)
    ]


def open_ingress(objs: Iterable[dict[str, Any]]) -> list[str]:
    """NetworkPolicies that admit ingress from anywhere: a rule without peers (all
    sources), an ipBlock of prefix length 0, or every namespace's pods."""
    problems = []
    for policy in (o for o in objs if o["kind"] == "NetworkPolicy"):
        for rule in policy["spec"].get("ingress") or []:
            peers = rule.get("from") or []
            if not peers:
                problems.append(f"{name_of(policy)} admits any source")
            for peer in peers:
                block = peer.get("ipBlock")
                if block and ipaddress.ip_network(block["cidr"], strict=False).prefixlen == 0:
                    problems.append(f"{name_of(policy)} admits {block['cidr']}")
                if peer.get("namespaceSelector") == {} and not peer.get("podSelector"):
                    problems.append(f"{name_of(policy)} admits every namespace")
    return problems


def cluster_rbac(objs: Iterable[dict[str, Any]], allowed: Iterable[str]) -> list[str]:
    """ClusterRoles and ClusterRoleBindings not on the allow-list, and any ClusterRole
    that grants `secrets` (or every resource)."""
    allowed = set(allowed)
    problems = []
    for obj in objs:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            continue
        if obj["metadata"]["name"] not in allowed:
            problems.append(f"{name_of(obj)} is not on the allow-list")
        for rule in obj.get("rules") or []:
            if {"secrets", "*"} & set(rule.get("resources") or []):
                problems.append(f"{name_of(obj)} grants {rule['resources']}")
    return problems


def images(objs: Iterable[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """(object, image) for every container of every pod template."""
    for obj in objs:
        for spec in pod_specs(obj):
            for container in containers(spec):
                yield name_of(obj), container["image"]


def unpinned_images(objs: Iterable[dict[str, Any]], overridable: Iterable[str]) -> list[str]:
    """Images without a tag (or digest), tagged `latest`, or not among the images the
    site profile can override."""
    overridable = set(overridable)
    problems = []
    for where, image in images(objs):
        name, _, tag = image.rpartition(":")
        if "@sha256:" not in image and (not name or "/" in tag or tag == "latest"):
            problems.append(f"{where} runs {image}, which is not pinned to a tag")
        elif image not in overridable:
            problems.append(f"{where} runs {image}, which the site profile cannot override")
    return problems


def missing_resources(objs: Iterable[dict[str, Any]]) -> list[str]:
    return [
        f"{name_of(obj)} container {c['name']} lacks resource {part}"
        for obj in objs
        for spec in pod_specs(obj)
        for c in containers(spec)
        for part in ("requests", "limits")
        if not (c.get("resources") or {}).get(part)
    ]


def secrets_on_command_lines(objs: Iterable[dict[str, Any]], values: Iterable[str]) -> list[str]:
    """Containers whose command or arguments carry a secret: a `$(VAR)` reference to an
    environment variable set from a Secret (Kubernetes expands it into the process's
    arguments, which any process on the node may read in /proc), or one of `values`."""
    values = [v for v in values if v]
    problems = []
    for obj in objs:
        for spec in pod_specs(obj):
            for container in containers(spec):
                from_secrets = {
                    e["name"]
                    for e in container.get("env") or []
                    if "secretKeyRef" in (e.get("valueFrom") or {})
                }
                line = " ".join(
                    str(part)
                    for part in [*(container.get("command") or []), *(container.get("args") or [])]
                )
                where = f"{name_of(obj)} container {container['name']}"
                problems += [
                    f"{where}: $({name}) from a Secret on its command line"
                    for name in sorted(from_secrets)
                    if f"$({name})" in line
                ]
                problems += [
                    f"{where}: a secret value on its command line" for v in values if v in line
                ]
    return problems
