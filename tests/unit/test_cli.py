"""The `testbed` command: listings, plans, and clear errors with exit code 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbeds.cli import main
from testbeds.targets.local import podman


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["hpc-access"]["nodes"] == 5


def test_show_prints_groups_roles_and_hardware(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "hpc-access"]) == 0
    out = capsys.readouterr().out
    assert "cpu          x2  cpu1, cpu2" in out
    assert "hardware: 2 cpu, 1000 MB, infiniband" in out
    assert "on target local: no HCA: UCX and OpenMPI run over TCP" in out
    assert "hardware: 2 cpu, 1000 MB, 2 gpu a100" in out
    assert "on target local: emulated GPU" in out


def test_show_json_is_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "hpc-access", "--json", "--instance", "other"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["instance"] == "other"
    assert plan["groups"]["slurm_controller"] == ["controller"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "nope"], "no testbed named 'nope'"),
        (["up", "hpc-access", "--site", "atlantis"], "no site named 'atlantis'"),
        (["up", "hpc-access", "--target", "mainframe"], "target 'mainframe' is not available"),
        (["up", "hpc-access", "--instance", "Bad_Name"], "is not a valid name"),
        (["verify", "never-created"], "no testbed instance 'never-created' is up"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Errors go to stderr as one 'testbed: error:' line, no traceback, exit code 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("testbed: error:")
    assert message in err
    assert "Traceback" not in err


def test_missing_site_value_fails_before_anything_is_created(
    scratch_home, capsys: pytest.CaptureFixture[str]
) -> None:
    """A site without the local target's values is refused naming the file and the field."""
    site = scratch_home / "inventories" / "local" / "site.yml"
    text = site.read_text()
    site.write_text(text[: text.index("local:")])
    assert main(["up", "hpc-access", "--instance", "never-made"]) == 2
    err = capsys.readouterr().err
    assert f"{site}: local: missing" in err
    assert not podman.containers(f"{podman.INSTANCE_LABEL}=never-made")


def test_manifests_for_a_site_without_a_kubernetes_section_name_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`show --manifests` for a site with no `kubernetes:` section says so in one line
    naming the file and field, exit 2, and writes nothing."""
    folder = tmp_path / "manifests"
    argv = ["show", "hpc-access", "--target", "kubernetes", "--manifests", str(folder)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("testbed: error:") and "Traceback" not in err
    assert "inventories/local/site.yml: kubernetes: missing" in err
    assert not folder.exists()


def test_openstack_target_without_pulumi_cli_refused_before_anything_is_created(
    isolated_state: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Without the Pulumi CLI (as on these machines) the openstack target says what it needs
    and creates nothing, not even the instance's state directory."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi, even where one is installed
    # An instance name of this test's own: the state root is shared by the whole session.
    argv = ["up", "hpc-access", "--site", "partner-a", "--target", "openstack"]
    assert main([*argv, "--instance", "os-never-made"]) == 2
    assert "needs the Pulumi CLI on PATH" in capsys.readouterr().err
    assert not (isolated_state / "os-never-made").exists()
