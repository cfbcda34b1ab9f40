"""Hostile and broken input to the loader and every CLI entry point: the outcome is success
or exit 2 with one line naming the file (and field), never a traceback, and nothing is
created in the state root or on the target (the local target's podman is never reached:
every entry point here must stop before it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbeds.cli import main

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text a hostile file or argument might carry: control characters, ANSI escapes, quotes,
# path tricks, shell and YAML syntax, long runs.
nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "\x1b[31mred\x1b[0m",
            "\x00",
            "../../etc",
            "/",
            ".",
            "",
            "a\nb",
            "$(id)",
            "'; rm -rf /; '",
            "*alias",
            "&anchor x",
            "{{ lookup('pipe', 'id') }}",
            "-x",
            "--help-me",
            "9" * 400,
        ]
    ),
)
scalars = st.one_of(nasty_text, st.integers(), st.floats(allow_nan=True), st.booleans(), st.none())
shapes = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)
    ),
    max_leaves=12,
)
DEFINITION_KEYS = ["name", "description", "checks", "entry", "node_groups", "vars"]


@st.composite
def definition_like(draw: st.DrawFn) -> Any:
    """Mostly the right keys with wrong shapes, sometimes something else entirely."""
    if draw(st.booleans()):
        return draw(shapes)
    base = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "smoke.yaml").read_text())
    for key in draw(st.lists(st.sampled_from(DEFINITION_KEYS), max_size=3)):
        base[key] = draw(shapes)
    if draw(st.booleans()):
        base["node_groups"] = [{"name": "node", "count": draw(scalars), "roles": ["common"]}]
    return base


def contents(state: Path) -> set[Path]:
    """Everything under the state root (other tests of the session may have left state)."""
    return set(state.rglob("*")) if state.exists() else set()


def run(argv: list[str], state: Path) -> tuple[int, set[Path]]:
    """main(argv), and what it added under the state root."""
    before = contents(state)
    code = main(argv)
    return code, contents(state) - before


def assert_clean_outcome(
    code: int, err: str, created: set[Path], allowed: tuple[int, ...] = (0, 2)
) -> None:
    assert code in allowed, (code, err)
    assert "Traceback" not in err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("testbed"), lines
        assert "\x1b" not in lines[0]
    assert created == set(), created


@st.composite
def corrupted_definition(draw: st.DrawFn) -> tuple[dict[str, Any], set[str]]:
    """The sample definition with some of its fields given hostile values, and which."""
    base = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "smoke.yaml").read_text())
    keys = set(draw(st.lists(st.sampled_from(DEFINITION_KEYS), min_size=1, max_size=3)))
    for key in keys:
        base[key] = draw(shapes)
    return base, keys


@SETTINGS
@given(corrupted=corrupted_definition())
def test_a_definition_error_names_a_field_that_was_broken(
    corrupted: tuple[dict[str, Any], set[str]], tmp_path: Path, capsys: Any, isolated_state: Path
) -> None:
    """A definition refused for hostile field values says so in one line naming the file
    and one of the broken fields (or `entry`, which names a node group), nothing else."""
    data, broken = corrupted
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    code, created = run(["show", str(path)], isolated_state)
    err = capsys.readouterr().err
    assert_clean_outcome(code, err, created)
    if code == 2:
        field = err.strip().removeprefix(f"testbed: error: {path}: ")
        named = field.split(":", 1)[0].split("[", 1)[0].split(".", 1)[0]
        assert named in broken | {"entry"}, (broken, err)


@SETTINGS
@given(data=definition_like(), raw=st.one_of(st.none(), st.binary(max_size=200)))
def test_a_broken_definition_file_is_one_line(
    data: Any, raw: bytes | None, tmp_path: Path, capsys: Any, isolated_state: Path
) -> None:
    """show/graph of a definition file of any shape or bytes (non-UTF-8 included)."""
    path = tmp_path / "hostile.yaml"
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
    code, created = run(["show", str(path)], isolated_state)
    err = capsys.readouterr().err
    assert_clean_outcome(code, err, created)
    if code == 2:
        assert f"testbed: error: {path}" in err, err


@SETTINGS
@given(site=definition_like(), hosts=shapes)
def test_a_broken_site_profile_is_one_line(
    site: Any, hosts: Any, scratch_home: Path, capsys: Any, isolated_state: Path
) -> None:
    """A site profile and hosts.yml of any shape (list-shaped hosts, non-numeric ports):
    show for every target stops with one line, or succeeds."""
    folder = scratch_home / "inventories" / "hostile"
    folder.mkdir(exist_ok=True)
    if isinstance(site, dict):
        site = {**site, "name": "hostile"}
    (folder / "site.yml").write_text(yaml.safe_dump(site, allow_unicode=True))
    (folder / "hosts.yml").write_text(yaml.safe_dump(hosts, allow_unicode=True))
    for target in ("local", "static", "openstack", "kubernetes"):
        code, created = run(
            ["show", "hpc-access", "--site", "hostile", "--target", target], isolated_state
        )
        assert_clean_outcome(code, capsys.readouterr().err, created)


@SETTINGS
@given(name=nasty_text, command=st.sampled_from(["down", "verify", "status", "graph", "show"]))
def test_any_instance_name_is_one_line_and_touches_nothing(
    name: str, command: str, capsys: Any, isolated_state: Path, tmp_path: Path
) -> None:
    """Every command that takes a name or --instance, with any text."""
    argv = (
        [command, "hpc-access", "--instance", name, "--output", str(tmp_path / "g")]
        if command == "graph"
        else [command, "hpc-access", "--instance", name]
        if command == "show"
        else [command, name]
    )
    code, created = run(argv, isolated_state)
    err = capsys.readouterr().err
    # status answers 3 for an instance that is not up
    assert_clean_outcome(code, err, created, (0, 2, 3) if command == "status" else (0, 2))


class ReachedTheTarget(Exception):
    """Random input got past every check to where nodes would be made."""


@SETTINGS
@given(
    command=st.sampled_from(["up", "bake", "show", "down", "status", "verify", "list"]),
    argv=st.lists(nasty_text, max_size=5),
)
def test_any_command_line_is_one_line(
    command: str,
    argv: list[str],
    capsys: Any,
    isolated_state: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Arbitrary arguments to every command, up and bake included, never give a traceback
    (usage errors are one line too), and none gets as far as making a node."""
    from testbeds import bake, deploy

    def reached(*_: Any, **__: Any) -> Any:
        raise ReachedTheTarget(argv)

    monkeypatch.setattr(deploy, "up", reached)
    monkeypatch.setattr(bake, "bake", reached)
    code, created = run([command, *argv], isolated_state)
    assert_clean_outcome(code, capsys.readouterr().err, created, (0, 2, 3))


@pytest.mark.parametrize("size", [2 * 1024 * 1024])
def test_a_huge_definition_is_refused_before_parsing(
    size: int, tmp_path: Path, capsys: Any
) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("a: " + "x" * size)
    assert main(["show", str(path)]) == 2
    assert "larger than" in capsys.readouterr().err


def test_a_folder_named_like_a_definition_is_one_line(tmp_path: Path, capsys: Any) -> None:
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    assert main(["show", str(folder)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_up_with_a_role_that_would_never_run_creates_nothing(
    tmp_path: Path, capsys: Any, isolated_state: Path
) -> None:
    """`slurm` is a role (others depend on it) without a play of its own in the site
    playbook: `up` of a definition giving it to a node group stops with one line naming
    the file and field, before any state or container exists."""
    data = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "smoke.yaml").read_text())
    data["node_groups"][0]["roles"] = [*data["node_groups"][0]["roles"], "slurm"]
    path = tmp_path / "never-runs.yaml"
    path.write_text(yaml.safe_dump(data))
    code, created = run(["up", str(path), "--instance", "never-runs"], isolated_state)
    err = capsys.readouterr().err
    assert_clean_outcome(code, err, created, (2,))
    assert f"{path}: node_groups[{data['node_groups'][0]['name']}].roles: role 'slurm'" in err
