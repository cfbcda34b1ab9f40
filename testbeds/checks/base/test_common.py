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


@pytest.mark.nodes("common")
def test_trusts_each_authority_once(host):
    """The node's bundle holds no authority twice (a site's extra authorities are added only
    where the distribution lacks them): each TLS client that loads the bundle reads it all."""
    bundle = host.file("/etc/ssl/certs/ca-certificates.crt").content_string
    bodies = ["".join(pem.split()) for pem in bundle.split("-----END CERTIFICATE-----")[:-1]]
    assert bodies, "the node trusts no authority"
    repeated = len(bodies) - len(set(bodies))
    assert repeated == 0, f"{repeated} of {len(bodies)} authorities are in the bundle twice"
