"""A testbed deployed with `--target kubernetes`, checked in the cluster itself through
testinfra's kubectl backend: every pod of the testbed's namespace runs and its services
answer. `testbed verify` runs these for Kubernetes instances with WP5_K8S_NAMESPACE set to
the instance's namespace; without kubectl or a cluster (KUBECONFIG) they skip, saying so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import testinfra

NAMESPACE = os.environ.get("WP5_K8S_NAMESPACE", "")
CONTEXT = os.environ.get("WP5_K8S_CONTEXT", "")
CLUSTER = bool(os.environ.get("KUBECONFIG")) or (Path.home() / ".kube" / "config").is_file()

pytestmark = [
    pytest.mark.skipif(not NAMESPACE, reason="not a Kubernetes instance: WP5_K8S_NAMESPACE unset"),
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
    pytest.mark.skipif(not CLUSTER, reason="no cluster configured (KUBECONFIG, ~/.kube/config)"),
]


def kubectl_json(*args: str) -> dict[str, Any]:
    context = ["--context", CONTEXT] if CONTEXT else []
    out = subprocess.run(
        ["kubectl", *context, *args, "-o", "json"], capture_output=True, text=True, check=True
    ).stdout
    return dict(json.loads(out))


def pods(namespace: str) -> list[dict[str, Any]]:
    return list(kubectl_json("-n", namespace, "get", "pods")["items"])


def pod_host(pod: dict[str, Any], namespace: str) -> Any:
    context = f"&context={CONTEXT}" if CONTEXT else ""
    return testinfra.get_host(f"kubectl://{pod['metadata']['name']}?namespace={namespace}{context}")


def test_every_pod_runs() -> None:
    namespace = NAMESPACE
    found = pods(namespace)
    assert found, f"no pod in namespace {namespace}"
    for pod in found:
        assert pod["status"]["phase"] in ("Running", "Succeeded"), pod["metadata"]["name"]


def test_xrootd_endpoints_listen() -> None:
    """Each XRootD pod listens on root:// and HTTPS (data-movement only)."""
    namespace = NAMESPACE
    endpoints = [p for p in pods(namespace) if p["spec"]["containers"][0]["name"] == "xrootd"]
    if not endpoints:
        pytest.skip("this namespace has no XRootD endpoint")
    for pod in endpoints:
        host = pod_host(pod, namespace)
        assert host.socket("tcp://0.0.0.0:1094").is_listening
        assert host.socket("tcp://0.0.0.0:8443").is_listening


def test_pipeline_services_answer() -> None:
    """pipelines: MLflow answers its health check from inside its pod, and the sample
    WorkflowTemplate is there for Argo to run."""
    namespace = NAMESPACE
    mlflow = [
        p
        for p in pods(namespace)
        if p["metadata"]["labels"].get("app.kubernetes.io/name") == "mlflow"
    ]
    if not mlflow:
        pytest.skip("this namespace has no pipelines services")
    host = pod_host(mlflow[0], namespace)
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
    namespace = NAMESPACE
    if not [p for p in pods(namespace) if p["metadata"]["name"].startswith("interlink-vk")]:
        pytest.skip("this namespace offloads nothing to Slurm")
    node = kubectl_json("get", "node", f"{namespace}-slurm")
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"
