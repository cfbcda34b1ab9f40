"""Roles follow one set of conventions: defaults and argument_specs name the same
variables; every task carries a step tag, one `testbed bake` runs (`<role>_preflight`,
`_detect`, `_install`) or the one it skips (`<role>_configure`); no baked step touches a
secret (a baked image must hold none); packages go through apt with the site playbook's
defaults; generated passwords and tokens come only from the testbed_secret lookup."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbeds.targets.local.baked import BAKE_STEPS

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks" / "main.yml").is_file())
# What reading a secret looks like in a task: the secret lookup, another lookup, or hiding
# the task's values from the log.
SECRET = re.compile(r"testbed_secret|lookup\(|no_log")
INCLUDES = ("ansible.builtin.import_tasks", "ansible.builtin.include_tasks")
# Reading the other nodes of the inventory.
INVENTORY = re.compile(r"groups\[|hostvars|play_hosts")
# Whether this node is in a group: its own roles, the same in every bake of its group.
GROUP = r"groups\['[a-z_]+'\](?:\s*\|\s*default\(\[\]\))?"
OWN_GROUPS = re.compile(rf"inventory_hostname in {GROUP}(?:\s*\+\s*{GROUP})*")


def names(value: str | list[str]) -> list[str]:
    """A task keyword that takes one name or a list of them (tags, notify, listen)."""
    return [value] if isinstance(value, str) else list(value)


def tags_of(task: dict[str, Any]) -> set[str]:
    return set(names(task.get("tags", [])))


def leaf_tasks(
    role: str, file: str = "main.yml", inherited: frozenset[str] = frozenset()
) -> Iterator[tuple[str, dict[str, Any], frozenset[str]]]:
    """(file, task, tags it runs under) for every task, through blocks and imports."""
    tasks = yaml.safe_load((REPO / "roles" / role / "tasks" / file).read_text()) or []
    yield from _walk(role, file, tasks, inherited)


def _walk(
    role: str, file: str, tasks: list[dict[str, Any]], inherited: frozenset[str]
) -> Iterator[tuple[str, dict[str, Any], frozenset[str]]]:
    for task in tasks:
        tags = inherited | tags_of(task)
        if "block" in task:
            for part in ("block", "rescue", "always"):
                yield from _walk(role, file, task.get(part) or [], tags)
            continue
        include = next((task[k] for k in INCLUDES if k in task), None)
        if include is not None:
            target = include if isinstance(include, str) else include["file"]
            if "{{" not in target:
                yield from leaf_tasks(role, target, tags)
                continue
        yield file, task, tags


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_specs_name_the_same_variables(role: str) -> None:
    folder = REPO / "roles" / role
    defaults = yaml.safe_load((folder / "defaults" / "main.yml").read_text()) or {}
    specs = yaml.safe_load((folder / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"].get("options") or {}
    assert set(defaults) - set(options) == set(), "in defaults, not in argument_specs"
    assert {k for k, v in options.items() if "default" in v or not v.get("required")} - set(
        defaults
    ) == set(), "in argument_specs, not in defaults"


@pytest.mark.parametrize("role", ROLES)
def test_every_task_carries_a_step_tag_and_no_baked_step_touches_a_secret(role: str) -> None:
    baked = {f"{role}_{step}" for step in BAKE_STEPS}
    steps = baked | {f"{role}_configure"}
    for file, task, tags in leaf_tasks(role):
        name = f"{role}/{file}: {task.get('name')}"
        assert tags & steps, f"{name} has none of {sorted(steps)}"
        if tags & baked:
            assert not SECRET.search(yaml.safe_dump(task)), f"{name}: a baked step reads a secret"


@pytest.mark.parametrize("role", ROLES)
def test_what_a_bake_installs_does_not_depend_on_the_other_nodes(role: str) -> None:
    """A bake builds some node groups' images at a time, so its inventory lacks the other
    groups: an install step that read them (directly or through one of the role's
    defaults) would bake a different image than a bake of every group."""
    defaults = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())
    from_inventory = {
        name
        for name, value in (defaults or {}).items()
        if INVENTORY.search(OWN_GROUPS.sub("", str(value)))
    }
    for file, task, tags in leaf_tasks(role):
        if f"{role}_install" not in tags:
            continue
        text = OWN_GROUPS.sub("", yaml.safe_dump(task))
        read = {name for name in from_inventory if re.search(rf"\b{name}\b", text)}
        assert not INVENTORY.search(text) and not read, (
            f"{role}/{file}: {task.get('name')} reads the inventory's groups {sorted(read)}"
        )


@pytest.mark.parametrize("role", ROLES)
def test_baked_shared_content_has_its_own_step_that_up_runs_too(role: str) -> None:
    """A role's `baked_shared` folders are written by its `<role>_shared` step, which every
    `up` runs too (as part of configure: it skips where a bake's image is mounted), which
    places no secret (the image is shared by every instance), and whose paths are the
    role's own variables."""
    folder = REPO / "roles" / role
    facts = yaml.safe_load((folder / "meta" / "testbed.yml").read_text()) or {}
    variables = facts.get("baked_shared") or []
    shared = [(f, t) for f, t, tags in leaf_tasks(role) if f"{role}_shared" in tags]
    if not variables:
        assert not shared, f"{role}: a {role}_shared step without baked_shared folders"
        return
    defaults = yaml.safe_load((folder / "defaults" / "main.yml").read_text()) or {}
    assert set(variables) <= set(defaults), "baked_shared names a variable the role lacks"
    assert shared, f"{role} names baked_shared folders but has no {role}_shared step"
    for file, task, tags in leaf_tasks(role):
        if f"{role}_shared" in tags:
            name = f"{role}/{file}: {task.get('name')}"
            assert f"{role}_configure" in tags, f"{name}: `up` would not run it"
            assert not re.search(r"testbed_secret|no_log", yaml.safe_dump(task)), name


def test_packages_and_secrets_have_one_way_each() -> None:
    """apt tasks name only their packages (the site playbook gives the rest); passwords and
    tokens come from testbed_secret, never from ansible.builtin.password."""
    for path in (REPO / "roles").rglob("*.yml"):
        text = path.read_text()
        assert "ansible.builtin.password" not in text, path
        if "tasks" in path.parts:
            assert "lock_timeout" not in text, path


SERVICE_MODULE = "ansible.builtin.systemd_service"


def restarted_units(role: str) -> dict[str, str]:
    """The unit each of the role's restart handlers restarts, by every name it answers to
    (its name and its `listen` topics)."""
    path = REPO / "roles" / role / "handlers" / "main.yml"
    handlers = (yaml.safe_load(path.read_text()) or []) if path.is_file() else []
    units = {}
    for handler in handlers:
        args = handler.get(SERVICE_MODULE) or {}
        if args.get("state") != "restarted":
            continue
        for topic in [handler["name"], *names(handler.get("listen", []))]:
            units[topic] = args["name"]
    return units


@pytest.mark.parametrize("role", ROLES)
def test_a_service_is_started_after_the_handlers_that_restart_it(role: str) -> None:
    """A step that starts a unit comes after the role's handlers were flushed, where a handler
    restarting that unit may be pending: on a first run the restart then starts the service
    once, with its final configuration, instead of a start and then a restart."""
    restarts = restarted_units(role)
    pending: set[str] = set()
    for file, task, _ in leaf_tasks(role):
        if task.get("ansible.builtin.meta") == "flush_handlers":
            pending.clear()
            continue
        pending |= {restarts[t] for t in names(task.get("notify", [])) if t in restarts}
        args = task.get(SERVICE_MODULE) or {}
        # A looped start names its units through the loop's item: not matched here.
        if args.get("state") == "started" and "loop" not in task:
            assert args["name"] not in pending, (
                f"{role}/{file}: {task.get('name')!r} starts {args['name']} while a handler "
                "restarting it may be pending: flush the handlers first"
            )
