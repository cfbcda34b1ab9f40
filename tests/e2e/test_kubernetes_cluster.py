"""A deployed Kubernetes stack, checked in the cluster itself through testinfra's kubectl
backend: every pod of the testbed's namespace runs and its services answer. Runs only where
KUBECONFIG points to a cluster with the stack deployed (WP5_K8S_NAMESPACE names it); no
Kubernetes API server can run on these machines, so here it is skipped, saying so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest
import testinfra

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (os.environ.get("KUBECONFIG") and os.environ.get("WP5_K8S_NAMESPACE")),
        reason="no Kubernetes cluster here: set KUBECONFIG and WP5_K8S_NAMESPACE to run",
    ),
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]


def pods(namespace: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "-n", namespace, "get", "pods", "-o", "json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return list(json.loads(out)["items"])


def test_every_pod_runs() -> None:
    namespace = os.environ["WP5_K8S_NAMESPACE"]
    found = pods(namespace)
    assert found, f"no pod in namespace {namespace}"
    for pod in found:
        assert pod["status"]["phase"] in ("Running", "Succeeded"), pod["metadata"]["name"]


def test_xrootd_endpoints_listen() -> None:
    """Each XRootD pod listens on root:// and HTTPS (data-movement only)."""
    namespace = os.environ["WP5_K8S_NAMESPACE"]
    endpoints = [p for p in pods(namespace) if p["spec"]["containers"][0]["name"] == "xrootd"]
    if not endpoints:
        pytest.skip("this namespace has no XRootD endpoint")
    for pod in endpoints:
        host = testinfra.get_host(f"kubectl://{pod['metadata']['name']}?namespace={namespace}")
        assert host.socket("tcp://0.0.0.0:1094").is_listening
        assert host.socket("tcp://0.0.0.0:8443").is_listening


def kubectl_json(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        ["kubectl", *args, "-o", "json"], capture_output=True, text=True, check=True
    ).stdout
    return dict(json.loads(out))


def test_pipeline_services_answer() -> None:
    """pipelines: MLflow answers its health check from inside its pod, and the sample
    WorkflowTemplate is there for Argo to run."""
    namespace = os.environ["WP5_K8S_NAMESPACE"]
    mlflow = [
        p
        for p in pods(namespace)
        if p["metadata"]["labels"].get("app.kubernetes.io/name") == "mlflow"
    ]
    if not mlflow:
        pytest.skip("this namespace has no pipelines services")
    host = testinfra.get_host(f"kubectl://{mlflow[0]['metadata']['name']}?namespace={namespace}")
    health = host.run(
        "python3 -c \"import urllib.request;print(urllib.request.urlopen('http://localhost:5000/health').read().decode())\""
    )
    assert health.rc == 0 and "OK" in health.stdout
    template = kubectl_json("-n", namespace, "get", "workflowtemplate", "research-pipeline")
    tasks = next(t for t in template["spec"]["templates"] if t["name"] == "pipeline")["dag"][
        "tasks"
    ]
    assert [t["name"] for t in tasks] == ["test", "train", "image"]


def test_interlink_virtual_node_is_ready() -> None:
    """hpc-access: the interLink virtual kubelet registered its node and the node is Ready
    (which needs the login node's interLink API to answer)."""
    namespace = os.environ["WP5_K8S_NAMESPACE"]
    if not [p for p in pods(namespace) if p["metadata"]["name"].startswith("interlink-vk")]:
        pytest.skip("this namespace offloads nothing to Slurm")
    node = kubectl_json("get", "node", f"{namespace}-slurm")
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"
