"""Monitoring: a node exporter on every node, Prometheus scraping all of them."""

from __future__ import annotations

import json

import pytest

from testbeds.checks.helpers import assert_service_running, wait_for


def exporter_targets(testbed) -> set[str]:
    """The scrape targets Prometheus should report healthy: every exporter at its port."""
    port = testbed.value("node_exporter_port")
    return {f"{n}:{port}" for n in testbed.group("node_exporter")}


@pytest.mark.nodes("node_exporter")
def test_node_exporter_running(testbed, host):
    """The node exporter is active and serves metrics on its port."""
    assert_service_running(host, "prometheus-node-exporter")
    metrics = host.run(f"curl -fsS http://localhost:{testbed.value('node_exporter_port')}/metrics")
    assert metrics.rc == 0 and "node_cpu_seconds_total" in metrics.stdout


def test_prometheus_has_every_node_up(testbed):
    """Prometheus on the controller reports a healthy scrape target for every node."""
    prom = testbed.host(testbed.group("prometheus")[0])
    expected = exporter_targets(testbed)
    api = f"http://localhost:{testbed.value('prometheus_port')}/api/v1/targets"

    def healthy() -> set[str]:
        out = prom.run(f"curl -fsS {api}")
        if out.rc != 0:
            return set()
        targets = json.loads(out.stdout)["data"]["activeTargets"]
        return {t["labels"]["instance"] for t in targets if t["health"] == "up"}

    assert wait_for(lambda: expected <= healthy(), timeout=60), sorted(expected - healthy())
