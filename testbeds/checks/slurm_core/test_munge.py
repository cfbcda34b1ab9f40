"""Munge: one key on every node, and credentials minted on one node decode on the others."""

from __future__ import annotations

import pytest

from testbeds.checks.helpers import assert_service_running


@pytest.mark.nodes("munge")
def test_munged_running(host):
    """munged is active and enabled on every node."""
    assert_service_running(host, "munge")


@pytest.mark.nodes("munge")
def test_munge_key_private(testbed, host):
    """The key is owned by munge and readable by nobody else."""
    key = host.file(testbed.value("munge_key_dest"))
    assert key.user == "munge"
    assert key.mode == 0o400


def test_munge_key_identical_everywhere(testbed):
    """Every node holds the same key (compared by hash, never printed)."""
    key = testbed.value("munge_key_dest")
    digests = {
        name: testbed.host(name).check_output(f"sha256sum {key} | cut -d' ' -f1")
        for name in testbed.group("munge")
    }
    assert len(digests) > 1
    assert len(set(digests.values())) == 1, f"munge keys differ: {sorted(digests)}"


@pytest.mark.nodes("munge")
def test_munge_credential_decodes_on_controller(testbed, node):
    """A credential minted on this node is accepted by the controller's munged."""
    controller = testbed.group("slurm_controller")[0]
    credential = testbed.host(node).check_output("munge -n")
    decoded = testbed.host(controller).run(f"echo '{credential}' | unmunge")
    assert decoded.rc == 0, decoded.stderr
    assert "STATUS:          Success (0)" in decoded.stdout
