"""Errors a user can act on: each names the file and the field at fault."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class TestbedError(Exception):
    """Base class for errors reported to the user without a traceback."""

    __test__ = False  # not a pytest test class, despite the name


def printable(text: str) -> str:
    """Text from input, safe on one terminal line: control characters (newlines, ANSI
    escapes) shown escaped, never acted on."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def field_path(loc: tuple[int | str, ...], data: Any) -> str:
    """Render a pydantic location, naming list items by their `name` where they have one."""
    parts: list[str] = []
    node = data
    for key in loc:
        if isinstance(key, int):
            name = (
                node[key].get("name")
                if isinstance(node, list) and key < len(node) and isinstance(node[key], dict)
                else None
            )
            parts.append(f"[{name}]" if name else f"[{key}]")
        else:
            parts.append(f".{key}" if parts else str(key))
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            node = None
    return "".join(parts)


class DefinitionError(TestbedError):
    """A testbed definition or site profile is invalid."""

    def __init__(self, path: Path | str, field: str, message: str) -> None:
        self.path = Path(path)
        self.field = field
        self.message = message
        where = f"{self.path}: {field}" if field else str(self.path)
        super().__init__(printable(f"{where}: {message}"))


class UsageError(TestbedError):
    """A command-line argument that cannot be used as given (one line, exit 2)."""


class PreflightError(TestbedError):
    """The target cannot host the testbed as asked (name clash, missing tool, ...)."""


class DeployError(TestbedError):
    """A phase of `up` failed after resources were created."""
