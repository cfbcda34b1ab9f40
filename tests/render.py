"""Render a role's template with Ansible itself, on the control node, for config unit tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


def render_role_template(
    role: str,
    template: str,
    tmp_path: Path,
    hosts: dict[str, dict[str, Any]],
    groups: dict[str, list[str]],
    on_host: str,
    extra_vars: dict[str, Any] | None = None,
) -> str:
    """Template roles/<role>/templates/<template> as `on_host` would see it, with role defaults
    and vars loaded, in an inventory of the given hosts (all connection=local)."""
    inventory = {
        "all": {
            "hosts": {name: {"ansible_connection": "local", **hv} for name, hv in hosts.items()},
            "children": {g: {"hosts": {m: {} for m in members}} for g, members in groups.items()},
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    role_dir = REPO / "roles" / role
    dest = tmp_path / "rendered"
    tasks: list[dict[str, Any]] = [
        {"ansible.builtin.include_vars": str(role_dir / "defaults" / "main.yml")},
    ]
    if (role_dir / "vars" / "main.yml").is_file():
        tasks.append({"ansible.builtin.include_vars": str(role_dir / "vars" / "main.yml")})
    if extra_vars:
        tasks.append({"ansible.builtin.set_fact": extra_vars})
    tasks.append(
        {
            "ansible.builtin.template": {
                "src": str(role_dir / "templates" / template),
                "dest": str(dest),
                "mode": "0644",
            }
        }
    )
    playbook = [{"hosts": on_host, "gather_facts": False, "tasks": tasks}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(playbook))
    run_local_playbook(tmp_path / "play.yml", str(tmp_path / "hosts.yml"))
    return dest.read_text()


def local_playbook(playbook: Path, inventory: str) -> subprocess.CompletedProcess[str]:
    """Run a playbook on this machine (every host local) with the Python running the tests."""
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            inventory,
            "-c",
            "local",
            str(playbook),
            "-e",
            json.dumps({"ansible_python_interpreter": sys.executable}),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
    )


def run_local_playbook(playbook: Path, inventory: str) -> None:
    """local_playbook, failing with its output unless it succeeds."""
    proc = local_playbook(playbook, inventory)
    assert proc.returncode == 0, proc.stdout + proc.stderr
