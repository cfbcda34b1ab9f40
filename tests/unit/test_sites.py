"""Site profiles: where each value comes from (`show --values`), and the static target's
checks of a site's host list and login material, before anything is touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbeds.cli import main
from testbeds.errors import DefinitionError
from testbeds.model.plan import resolve
from testbeds.model.provenance import resolved_values
from testbeds.targets.static.target import StaticTarget, listed_hosts


def test_values_name_the_layer_they_come_from() -> None:
    values = {v.name: v for v in resolved_values(resolve("data-movement"))}
    assert values["common_time_sync"].value is False
    assert values["common_time_sync"].source == "site local"
    assert values["common_time_sync"].overrides == ("role common",)
    assert values["rucio_account_limit_bytes"].source == "testbed data-movement"
    assert values["xrootd_root_port"].source == "role xrootd"
    assert values["ansible_python_interpreter"].source == "common"


def test_show_values_prints_sources(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "hpc-access", "--values"]) == 0
    out = capsys.readouterr().out
    assert "slurm_use_cgroups = false  [site local (over role slurm)]" in out


def test_static_site_lists_every_node() -> None:
    plan = resolve("hpc-access", site="example-site", target="static")
    assert sorted(listed_hosts(plan)) == sorted(n.name for n in plan.nodes)


def test_static_host_missing_from_hosts_yml_is_named(scratch_home: Path) -> None:
    hosts = scratch_home / "inventories" / "example-site" / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("        cpu2: {ansible_host: 10.1.0.22}\n", ""))
    plan = resolve("hpc-access", site="example-site", target="static")
    with pytest.raises(DefinitionError, match=r"hosts.yml: all.children.cpu.hosts.cpu2: missing"):
        listed_hosts(plan)


def test_static_key_file_that_is_not_there_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    """The example site's key is not in the repository: up stops naming the field."""
    assert main(["up", "hpc-access", "--site", "example-site", "--instance", "never-made"]) == 2
    err = capsys.readouterr().err
    assert "site.yml: static.private_key: keys/testbed_ed25519: no such file" in err


def test_static_target_removes_nothing() -> None:
    assert StaticTarget().destroy("never-made") == []
    assert StaticTarget().leftovers("never-made") == []
