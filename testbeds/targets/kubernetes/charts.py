"""Upstream Helm charts the Kubernetes target installs, each pinned to one version."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chart:
    repository: str
    chart: str
    version: str


JUPYTERHUB = Chart("https://hub.jupyter.org/helm-chart/", "jupyterhub", "4.2.0")
RUCIO_SERVER = Chart("https://rucio.github.io/helm-charts", "rucio-server", "37.0.0")
RUCIO_DAEMONS = Chart("https://rucio.github.io/helm-charts", "rucio-daemons", "37.0.0")
ARGO_WORKFLOWS = Chart("https://argoproj.github.io/argo-helm", "argo-workflows", "0.45.4")
MINIO = Chart("https://charts.min.io/", "minio", "5.4.0")
REGISTRY = Chart("https://helm.twun.io", "docker-registry", "2.2.3")
