# pulumi-kubernetes types its inputs as TypedDicts; these are plain dicts, validated by the
# tests against the Kubernetes schemas (kubernetes-validate) instead.
# mypy: disable-error-code="call-overload"
"""hpc-access on Kubernetes: JupyterHub (upstream chart) for interactive analysis, and a
virtual node backed by the hpc-access Slurm cluster through interLink.

The interLink virtual kubelet runs here; the interLink API and its Slurm plugin run on the
Slurm login node (the `interlink` role). A pod that tolerates the virtual node's taint and
selects it is sent to the API and runs as a Slurm job. The kubelet presents a bearer
token the login node generated (passed in as the stack's `interlinkToken` secret)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import yaml

from testbeds.cloud import charts
from testbeds.cloud.kubernetes.scope import RESTRICTED_CONTAINER, SMALL, Scope
from testbeds.schema import InterLinkSite

VIRTUAL_KUBELET = "interlink-vk"
OFFLOAD_TAINT = "virtual-node.interlink/no-schedule"
KUBELET_PORT = 10250


def jupyterhub(scope: Scope) -> None:
    """The hub starts each user's server as a pod, so it needs the API: the chart gives its
    own service account a Role limited to this namespace (pods, PVCs, events)."""
    token = scope.password("jupyterhub-proxy-token")
    scope.secret("jupyterhub-proxy", {"token": token.result})
    scope.release(
        "jupyterhub",
        charts.JUPYTERHUB,
        {
            "hub": {
                "serviceAccount": {"create": True},
                "resources": SMALL,
                "containerSecurityContext": RESTRICTED_CONTAINER,
                "networkPolicy": {"enabled": True},
            },
            "proxy": {"secretToken": token.result, "chp": {"resources": SMALL}},
            "singleuser": {
                "cpu": {"limit": 1, "guarantee": 0.1},
                "memory": {"limit": "1G", "guarantee": "256M"},
                "uid": 1000,
            },
            "rbac": {"create": True},
            "scheduling": {"userScheduler": {"enabled": False}},
            "prePuller": {"hook": {"enabled": False}, "continuous": {"enabled": False}},
        },
    )


def virtual_node_name(scope: Scope) -> str:
    return f"{scope.plan.instance}-slurm"


def virtual_kubelet_config(scope: Scope, interlink: InterLinkSite) -> str:
    """The virtual kubelet's InterLinkConfig.yaml; its capacity is the sum of the Slurm
    compute nodes' traits in the definition."""
    compute = [n for n in scope.plan.nodes if "slurm_compute" in n.roles]
    return yaml.safe_dump(
        {
            "InterlinkURL": interlink.url,
            "InterlinkPort": str(interlink.port),
            "VerboseLogging": False,
            "ErrorsOnlyLogging": False,
            "ServiceAccount": VIRTUAL_KUBELET,
            "Namespace": scope.plan.instance,
            "VKTokenFile": "/etc/interlink/token/token",
            "CPU": str(sum(n.traits.cpus for n in compute)),
            "Memory": f"{sum(n.traits.memory_mb for n in compute)}Mi",
            "Pods": "100",
            "GPU": str(sum(n.traits.gpus for n in compute)),
        },
        sort_keys=False,
    )


def interlink(scope: Scope, interlink: InterLinkSite, token: pulumi.Input[str]) -> None:
    """The virtual kubelet: its configuration, token, least-privilege RBAC and policy."""
    node = virtual_node_name(scope)
    scope.service_account(VIRTUAL_KUBELET, token=True)  # it is a kubelet: it talks to the API
    scope.config_map(
        f"{VIRTUAL_KUBELET}-config",
        {"InterLinkConfig.yaml": virtual_kubelet_config(scope, interlink)},
    )
    scope.secret(f"{VIRTUAL_KUBELET}-token", {"token": token})
    _kubelet_rbac(scope, node)
    labels = {"app.kubernetes.io/name": VIRTUAL_KUBELET}
    container = {
        "name": "virtual-kubelet",
        "image": scope.site.image("interlink_vk"),
        "env": [
            {"name": "NODENAME", "value": node},
            {"name": "KUBELET_PORT", "value": str(KUBELET_PORT)},
            {"name": "CONFIGPATH", "value": "/etc/interlink/InterLinkConfig.yaml"},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
        "ports": [{"containerPort": KUBELET_PORT}],
        "volumeMounts": [
            {
                "name": "config",
                "mountPath": "/etc/interlink/InterLinkConfig.yaml",
                "subPath": "InterLinkConfig.yaml",
            },
            {"name": "token", "mountPath": "/etc/interlink/token", "readOnly": True},
        ],
    }
    volumes = [
        {"name": "config", "configMap": {"name": f"{VIRTUAL_KUBELET}-config"}},
        {"name": "token", "secret": {"secretName": f"{VIRTUAL_KUBELET}-token"}},
    ]
    scope.deployment(
        VIRTUAL_KUBELET,
        labels,
        scope.pod_spec(VIRTUAL_KUBELET, [container], run_as=65532, token=True, volumes=volumes),
    )
    # The kubelet calls the API server and the login node; the API server calls it back
    # for logs (port 10250).
    scope.allow_egress(
        f"{VIRTUAL_KUBELET}-out",
        labels,
        sorted({443, 6443, interlink.port}),
        [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
    )
    scope.allow_ingress(
        f"{VIRTUAL_KUBELET}-logs", labels, [KUBELET_PORT], [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    )


def _kubelet_rbac(scope: Scope, node: str) -> None:
    """What a virtual kubelet needs and no more: its own Node and lease, the pods bound to
    it (and their status), and reading what those pods mount. Nodes and leases are
    cluster-scoped or live in kube-node-lease, hence the cluster role."""
    rules = [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch", "create"]},
        {
            "apiGroups": [""],
            "resources": ["nodes"],
            "resourceNames": [node],
            "verbs": ["update", "patch", "delete"],
        },
        {
            "apiGroups": [""],
            "resources": ["nodes/status"],
            "resourceNames": [node],
            "verbs": ["update", "patch"],
        },
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [node],
            "verbs": ["update", "patch"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "delete"]},
        {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["update", "patch"]},
        {
            "apiGroups": [""],
            "resources": ["configmaps", "secrets", "services"],
            "verbs": ["get", "list", "watch"],
        },
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    ]
    name = f"{scope.plan.instance}-{VIRTUAL_KUBELET}"
    meta = {"name": name, "labels": scope.meta(name)["labels"]}
    role = k8s.rbac.v1.ClusterRole(
        f"{scope.name}-{VIRTUAL_KUBELET}-role", metadata=meta, rules=rules, opts=scope.opts
    )
    k8s.rbac.v1.ClusterRoleBinding(
        f"{scope.name}-{VIRTUAL_KUBELET}-binding",
        metadata=meta,
        role_ref={
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role.metadata.name,
        },
        subjects=[{"kind": "ServiceAccount", "name": VIRTUAL_KUBELET, "namespace": scope.ns}],
        opts=scope.opts,
    )
