"""Every node resolves every other node by name to its testbed address, keeps UTC, and has
the base tools the roles rely on."""

from __future__ import annotations

import pytest


@pytest.mark.nodes("common")
def test_resolves_every_node_by_name(testbed, host):
    """Each node name resolves, on every node, to the address the target gave that node."""
    for other in testbed.nodes:
        out = host.run(f"getent hosts {other.name}")
        assert out.rc == 0, f"{other.name} does not resolve"
        assert out.stdout.split()[0] == other.address, out.stdout


@pytest.mark.nodes("common")
def test_time_zone_is_utc(host):
    assert host.file("/etc/timezone").content_string.strip() == "Etc/UTC"


@pytest.mark.nodes("common")
@pytest.mark.parametrize("package", ["curl", "ca-certificates", "tzdata"])
def test_base_package_installed(host, package):
    assert host.package(package).is_installed
