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
