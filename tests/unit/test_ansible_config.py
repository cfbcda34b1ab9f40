"""Ansible as people run it: the repository's ansible.cfg holds the settings, `testbed`
adds only per-run values on top, and requirements.yml pins exactly the collections the
roles use, at ranges the installed ones satisfy."""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from testbeds import paths
from testbeds.runner import ansible_environment, run_playbook

REPO = Path(__file__).resolve().parents[2]


def cfg_settings() -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read(paths.ANSIBLE_CONFIG)
    return {key: value for section in parser.sections() for key, value in parser[section].items()}


def test_a_hand_run_gets_the_same_settings(tmp_path: Path) -> None:
    """ansible-config, started as a person would from the checkout, reads ansible.cfg."""
    dump = subprocess.run(
        ["ansible-config", "dump", "--only-changed", "--format", "json"],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")},
        capture_output=True,
        text=True,
        check=True,
    )
    changed = {item["name"]: item["value"] for item in json.loads(dump.stdout) if "name" in item}
    assert changed["CONFIG_FILE"] == str(paths.ANSIBLE_CONFIG)
    assert changed["DEFAULT_FORCE_HANDLERS"] is True
    assert changed["ANSIBLE_PIPELINING"] is True
    assert changed["DEFAULT_ROLES_PATH"] == [str(REPO / "roles")]


def test_testbed_adds_only_per_run_values(tmp_path: Path) -> None:
    env = ansible_environment(tmp_path, forks=5)
    assert env["ANSIBLE_CONFIG"] == str(paths.ANSIBLE_CONFIG)
    in_cfg = {f"ANSIBLE_{key.upper()}" for key in cfg_settings()}
    assert in_cfg & set(env) == {"ANSIBLE_ROLES_PATH"}  # TESTBED_HOME may move the roles


def test_a_run_uses_the_environments_ansible_when_nobody_activated_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`testbed` run by its path, or the elastic broker it starts, may have a PATH without
    its virtual environment: the run still finds that environment's ansible-playbook."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert ansible_environment(tmp_path, forks=1)["PATH"].split(os.pathsep)[:3] == [
        str(Path(sys.executable).parent),
        "/usr/bin",
        "/bin",
    ]
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {"localhost": {"ansible_connection": "local"}},
                    "vars": {"ansible_python_interpreter": sys.executable},
                }
            }
        )
    )
    play = [{"hosts": "all", "gather_facts": False, "tasks": [{"ansible.builtin.ping": {}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    result = run_playbook(tmp_path / "play.yml", [str(inventory)], tmp_path / "runner", 1)
    assert result.ok, (result.status, result.artifacts)


def test_requirements_pin_the_collections_the_roles_use() -> None:
    used = {
        ".".join(match.split(".")[:2])
        for path in (REPO / "roles").rglob("*.yml")
        for match in re.findall(
            r"^\s*-?\s*((?:ansible\.posix|community\.\w+)\.\w+):", path.read_text(), re.M
        )
    }
    pinned = {
        c["name"]: c["version"]
        for c in yaml.safe_load((REPO / "requirements.yml").read_text())["collections"]
    }
    assert set(pinned) == used
    listing = subprocess.run(
        ["ansible-galaxy", "collection", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {
        name: info["version"]
        for location in yaml.safe_load(listing.stdout).values()
        for name, info in location.items()
    }
    for name, version in pinned.items():
        assert installed[name] in SpecifierSet(version), (name, installed[name], version)
