"""The filter that lets a role's apt task skip a node that has all its packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

FILTER = Path(__file__).parents[2] / "testbeds" / "ansible_plugins" / "filter" / "packages.py"
spec = importlib.util.spec_from_file_location("packages_filter", FILTER)
assert spec is not None and spec.loader is not None
packages = importlib.util.module_from_spec(spec)
spec.loader.exec_module(packages)


def test_lists_only_the_packages_the_node_lacks() -> None:
    facts = {"packages": {"munge": [{"version": "0.5.15"}], "git": [{"version": "2.39"}]}}
    assert packages.missing_packages(["munge", "slurmd"], facts) == ["slurmd"]
    assert packages.missing_packages("git", facts) == []


def test_without_package_facts_every_package_is_missing() -> None:
    """A run that did not read the facts (or an older fact cache without them) installs."""
    assert packages.missing_packages(["munge"], {}) == ["munge"]
    assert packages.missing_packages(["munge"], {"packages": None}) == ["munge"]


def test_every_roles_apt_task_is_guarded_and_the_facts_are_read_first() -> None:
    roles = Path(__file__).parents[2] / "roles"
    common = (roles / "common" / "tasks" / "install.yml").read_text()
    assert common.index("ansible.builtin.package_facts") > common.index("ansible.builtin.apt:")
    assert "tags: [always]" in common.split("ansible.builtin.package_facts")[1]
    for tasks in roles.glob("*/tasks/*.yml"):
        if tasks.parts[-3] == "common":
            continue  # its apt task updates the package lists the others rely on
        text = tasks.read_text()
        assert text.count("ansible.builtin.apt:") == text.count("missing_packages("), tasks
        if "delegate_to:" in text and "ansible.builtin.apt:" in text:
            # a delegated task installs on another host: that host's facts decide
            assert "missing_packages(ansible_facts)" not in text, tasks
