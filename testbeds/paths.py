"""Where the project's files and the per-testbed state live."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DEFINITIONS_DIR = PACKAGE_DIR / "definitions"
PLAYBOOKS_DIR = PACKAGE_DIR / "playbooks"
CHECKS_DIR = PACKAGE_DIR / "checks"
TEMPLATES_DIR = PACKAGE_DIR / "templates"
# The settings every Ansible run uses, `testbed`'s and a hand-run's.
ANSIBLE_CONFIG = PACKAGE_DIR.parent / "ansible.cfg"


def project_root() -> Path:
    """The checkout holding roles/ and inventories/ (override with TESTBED_HOME)."""
    override = os.environ.get("TESTBED_HOME")
    root = Path(override) if override else PACKAGE_DIR.parent
    if not (root / "roles").is_dir():
        raise FileNotFoundError(
            f"{root} has no roles/ folder; set TESTBED_HOME to the wp5-testbeds checkout"
        )
    return root


def roles_dir() -> Path:
    return project_root() / "roles"


def inventories_dir() -> Path:
    return project_root() / "inventories"


def state_root() -> Path:
    """Per-testbed state (inventory, artifacts, secrets, timings); TESTBED_STATE_DIR overrides."""
    override = os.environ.get("TESTBED_STATE_DIR")
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "wp5-testbeds"


def cache_root() -> Path:
    """Build caches (base image rootfs inputs); TESTBED_CACHE_DIR overrides."""
    override = os.environ.get("TESTBED_CACHE_DIR")
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "wp5-testbeds"
