"""The code and the roles stay lint-clean: ruff, mypy (strict) and ansible-lint (production)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "ruff", "check", "."],
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        [sys.executable, "-m", "mypy"],
        ["ansible-lint", "--nocolor", "-q"],
    ],
    ids=["ruff", "ruff-format", "mypy", "ansible-lint"],
)
def test_linter_passes(command: list[str]) -> None:
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
