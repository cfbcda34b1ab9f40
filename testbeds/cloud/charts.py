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
