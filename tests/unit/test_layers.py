"""The package's folders follow the pipeline's stages, and no import runs upward.

Every import the package's modules make at run time (at the top of a module or inside a
function; `if TYPE_CHECKING:` blocks are for the type checker only) is read from the
source. Each module has a layer, from the definition model up to the command line; a
module may import its own layer or those below, never one above, and no modules import
each other in a circle."""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbeds import paths

# Lowest first. A module's layer is that of the longest prefix listed.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "shared building blocks",
        (
            "testbeds.errors", "testbeds.paths", "testbeds.progress", "testbeds.deadlines",
            "testbeds.digests", "testbeds.templating", "testbeds.locks", "testbeds.state",
            "testbeds.role_facts", "testbeds.playbook", "testbeds.pipeline_file",
            "testbeds.sshkeys", "testbeds.slurm_states", "testbeds.check_times",
            "testbeds.identity", "testbeds.model.fields", "testbeds.nodeside",
            "testbeds.samples", "testbeds.ansible_plugins",
        ),
    ),
    ("definition model", ("testbeds.model",)),
    ("node records", ("testbeds.nodes", "testbeds.sshconfig", "testbeds.inventory")),
    ("targets", ("testbeds.targets",)),
    ("the instance", ("testbeds.instance",)),
    (
        "configure and verify",
        (
            "testbeds.runner", "testbeds.definition_playbook", "testbeds.unchanged",
            "testbeds.verify", "testbeds.checks",
        ),
    ),
    (
        "commands",
        (
            "testbeds.bake", "testbeds.deploy", "testbeds.elastic", "testbeds.graph",
            "testbeds.cloud_configuration",
        ),
    ),
    ("command line", ("testbeds.cli",)),
]  # fmt: skip
PACKAGE = paths.PACKAGE_DIR


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return name.removesuffix(".__init__")


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> int:
    matches = [
        (len(prefix), rank)
        for rank, (_, prefixes) in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    assert matches, f"{module} is in no layer: add it to LAYERS"
    return max(matches)[1]


def runtime_imports(path: Path) -> Iterator[str]:
    """The package's modules this file imports when it runs."""
    tree = ast.parse(path.read_text())
    type_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in MODULES else node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports."""
    return {
        module: {m for m in runtime_imports(path) if m in MODULES and m not in (module, "testbeds")}
        for module, path in MODULES.items()
    }


def test_no_import_runs_upward() -> None:
    upward = [
        f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
        for a, imported in import_graph().items()
        for b in imported
        if layer_of(b) > layer_of(a)
    ]
    assert not upward, upward


def test_no_modules_import_each_other_in_a_circle() -> None:
    try:
        graphlib.TopologicalSorter(import_graph()).prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"modules import each other in a circle: {error.args[1]}")


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("from testbeds.deploy import up\n", "a target importing a command"),
        ("def f():\n    from testbeds.cli import main\n", "even inside a function"),
    ],
)
def test_an_upward_import_is_found(source: str, why: str, tmp_path: Path) -> None:
    path = tmp_path / "probe.py"
    path.write_text(source)
    imported = set(runtime_imports(path))
    assert any(layer_of(m) > layer_of("testbeds.targets.local.target") for m in imported), why
