"""The YAML reader's limits, at their exact edges, and the line each refusal names
(testbeds/model/loader.py: size, aliases, duplicate and unhashable keys, missing files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbeds.errors import DefinitionError
from testbeds.model.loader import MAX_YAML_ALIASES, MAX_YAML_BYTES, read_yaml


def refusal(path: Path) -> str:
    with pytest.raises(DefinitionError) as refused:
        read_yaml(path)
    return str(refused.value)


def aliases(path: Path, count: int) -> Path:
    """A file whose last line holds alias number `count`."""
    lines = ["a: &a x", *(f"k{i}: *a" for i in range(count))]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_alias_limit_is_exact_and_names_the_line(tmp_path: Path) -> None:
    at_limit = read_yaml(aliases(tmp_path / "ok.yaml", MAX_YAML_ALIASES))
    assert len(at_limit) == MAX_YAML_ALIASES + 1
    path = aliases(tmp_path / "bomb.yaml", MAX_YAML_ALIASES + 1)
    line = MAX_YAML_ALIASES + 2  # the anchor's line, then one line per alias
    assert refusal(path) == (
        f"{path}: line {line}, column 6: YAML syntax error: more than {MAX_YAML_ALIASES} aliases"
    )


def test_the_size_limit_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: " + b"x" * (MAX_YAML_BYTES - 4) + b"\n")
    assert path.stat().st_size == MAX_YAML_BYTES
    assert read_yaml(path) == {"a": "x" * (MAX_YAML_BYTES - 4)}
    path.write_bytes(b"a: " + b"x" * (MAX_YAML_BYTES - 3) + b"\n")
    assert refusal(path) == f"{path}: larger than {MAX_YAML_BYTES} bytes"


def test_a_duplicate_key_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: a\nnodes:\n  x: 1\n  x: 2\n")
    assert refusal(path) == f"{path}: line 4, column 3: YAML syntax error: duplicate key 'x'"


def test_an_unhashable_key_is_refused_by_yaml_itself(tmp_path: Path) -> None:
    path = tmp_path / "list-key.yaml"
    path.write_text("? [a, b]\n: 1\n")
    assert "found unhashable key" in refusal(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    assert refusal(path) == f"{path}: file not found"


def test_a_folder_a_binary_file_and_an_unreadable_path_are_named(tmp_path: Path) -> None:
    assert refusal(tmp_path) == f"{tmp_path}: is a folder, not a YAML file"
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    assert refusal(binary) == f"{binary}: not UTF-8 text (byte 6)"
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    assert refusal(loop) == f"{loop}: cannot be read: Too many levels of symbolic links"


def test_a_syntax_error_names_its_line_column_and_problem(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: a\nnodes: [x,\n  y\nother: 1\n")
    assert refusal(path) == (
        f"{path}: line 4, column 6: YAML syntax error: expected ',' or ']', but got ':'"
    )


def test_a_character_yaml_refuses_to_read_is_named_without_a_line(tmp_path: Path) -> None:
    """The reader's own refusals carry no line and column: the message says so."""
    path = tmp_path / "bell.yaml"
    path.write_text("name: a\x07\n")
    assert refusal(path) == (
        f"{path}: syntax: YAML syntax error: unacceptable character #x0007: special "
        'characters are not allowed\\n  in "<unicode string>", position 7'
    )  # one line: the reader's line break is shown escaped


def test_a_file_that_is_not_a_mapping_and_one_with_several_problems(tmp_path: Path) -> None:
    from testbeds.model.loader import parse
    from testbeds.model.schema import SiteProfile

    path = tmp_path / "site.yml"
    with pytest.raises(DefinitionError) as listed:
        parse(SiteProfile, path, ["a"])
    assert str(listed.value) == f"{path}: expected a mapping at the top level"
    with pytest.raises(DefinitionError) as two:
        parse(SiteProfile, path, {"name": "x", "colour": 1, "shape": 2})
    assert str(two.value) == f"{path}: colour: unknown key (and 1 more problem(s))"
    with pytest.raises(DefinitionError) as three:
        parse(SiteProfile, path, {"name": "x", "colour": 1, "shape": 2, "size": 3})
    assert str(three.value) == f"{path}: colour: unknown key (and 2 more problem(s))"
