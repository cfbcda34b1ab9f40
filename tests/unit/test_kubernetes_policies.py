"""Each policy in tests/kubernetes_policies.py finds what it is for: a compliant object
passes, and each way of breaking it is reported."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests import kubernetes_policies as policy

RESTRICTED_POD: dict[str, Any] = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    "containers": [
        {
            "name": "app",
            "image": "quay.io/example/app:1.0",
            "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}},
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        }
    ],
}


def deployment(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "app"},
        "spec": {"template": {"spec": spec}},
    }


def broken(change: str) -> dict[str, Any]:
    spec = copy.deepcopy(RESTRICTED_POD)
    container = spec["containers"][0]
    match change:
        case "host network":
            spec["hostNetwork"] = True
        case "privileged":
            container["securityContext"]["privileged"] = True
        case "host path":
            spec["volumes"].append({"name": "root", "hostPath": {"path": "/"}})
        case "root":
            container["securityContext"]["runAsUser"] = 0
        case "added capability":
            container["securityContext"]["capabilities"]["add"] = ["SYS_ADMIN"]
        case "host port":
            container["ports"] = [{"containerPort": 80, "hostPort": 80}]
        case "escalation":
            del container["securityContext"]["allowPrivilegeEscalation"]
        case "no runAsNonRoot":
            del spec["securityContext"]["runAsNonRoot"]
        case "no seccomp":
            del spec["securityContext"]["seccompProfile"]
        case "keeps capabilities":
            container["securityContext"]["capabilities"] = {}
        case "nfs volume":
            spec["volumes"].append({"name": "nfs", "nfs": {"server": "nas", "path": "/"}})
        case "init container":
            spec["initContainers"] = [{"name": "setup", "image": "busybox:1"}]
    return spec


BASELINE_BREAKS = [
    "host network",
    "privileged",
    "host path",
    "root",
    "added capability",
    "host port",
]
RESTRICTED_BREAKS = ["escalation", "no runAsNonRoot", "no seccomp", "keeps capabilities",
                     "nfs volume", "init container"]  # fmt: skip


def test_a_restricted_pod_passes_both_levels() -> None:
    assert policy.pod_security(RESTRICTED_POD, "restricted") == []
    assert policy.pod_security(RESTRICTED_POD, "baseline") == []


@pytest.mark.parametrize("change", BASELINE_BREAKS)
def test_baseline_breaks_fail_both_levels(change: str) -> None:
    assert policy.pod_security(broken(change), "baseline")
    assert policy.pod_security(broken(change), "restricted")


@pytest.mark.parametrize("change", RESTRICTED_BREAKS)
def test_restricted_breaks_fail_only_restricted(change: str) -> None:
    assert policy.pod_security(broken(change), "restricted")
    assert policy.pod_security(broken(change), "baseline") == []


def test_services_of_types_the_site_does_not_allow_are_reported() -> None:
    services = [
        {"kind": "Service", "metadata": {"name": name}, "spec": {"type": kind}}
        for name, kind in [("a", "ClusterIP"), ("b", "LoadBalancer"), ("c", "NodePort")]
    ]
    assert policy.exposed_services(services, []) == [
        "Service/b is LoadBalancer",
        "Service/c is NodePort",
    ]
    assert policy.exposed_services(services, ["LoadBalancer", "NodePort"]) == []


@pytest.mark.parametrize(
    ("rule", "reported"),
    [
        ({"ports": [{"port": 80}]}, True),
        ({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}, True),
        ({"from": [{"ipBlock": {"cidr": "::/0"}}]}, True),
        ({"from": [{"namespaceSelector": {}}]}, True),
        ({"from": [{"ipBlock": {"cidr": "10.96.0.0/12"}}]}, False),
        ({"from": [{"podSelector": {}}]}, False),
        ({"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"a": "b"}}}]}, False),
    ],
)
def test_network_policies_open_to_anywhere_are_reported(
    rule: dict[str, Any], reported: bool
) -> None:
    netpol = {"kind": "NetworkPolicy", "metadata": {"name": "p"}, "spec": {"ingress": [rule]}}
    assert bool(policy.open_ingress([netpol])) is reported


def test_cluster_roles_off_the_list_or_with_secrets_are_reported() -> None:
    roles = [
        {"kind": "ClusterRole", "metadata": {"name": "ok"}, "rules": [{"resources": ["nodes"]}]},
        {"kind": "ClusterRole", "metadata": {"name": "ok2"}, "rules": [{"resources": ["secrets"]}]},
        {"kind": "ClusterRoleBinding", "metadata": {"name": "other"}},
    ]
    assert policy.cluster_rbac(roles, ["ok", "ok2", "other"]) == [
        "ClusterRole/ok2 grants ['secrets']"
    ]
    assert policy.cluster_rbac(roles, ["ok"]) == [
        "ClusterRole/ok2 is not on the allow-list",
        "ClusterRole/ok2 grants ['secrets']",
        "ClusterRoleBinding/other is not on the allow-list",
    ]


@pytest.mark.parametrize(
    ("image", "reported"),
    [
        ("quay.io/example/app:1.0", False),
        ("quay.io/example/app", True),
        ("quay.io/example/app:latest", True),
        ("localhost:5000/app", True),
        ("quay.io/example/other:1.0", True),
    ],
)
def test_unpinned_or_unlisted_images_are_reported(image: str, reported: bool) -> None:
    spec = copy.deepcopy(RESTRICTED_POD)
    spec["containers"][0]["image"] = image
    found = policy.unpinned_images([deployment(spec)], ["quay.io/example/app:1.0"])
    assert bool(found) is reported


def test_containers_without_requests_or_limits_are_reported() -> None:
    assert policy.missing_resources([deployment(RESTRICTED_POD)]) == []
    spec = broken("init container")
    assert policy.missing_resources([deployment(spec)]) == [
        "Deployment/app container setup lacks resource requests",
        "Deployment/app container setup lacks resource limits",
    ]
