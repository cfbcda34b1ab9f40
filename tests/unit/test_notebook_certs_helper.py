"""The helper the hub runs as a user to hand a notebook its TLS files: they land in the user's
own home, readable by the user alone, never through a link someone left in the way."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import pwd
import stat
from pathlib import Path
from types import ModuleType

import pytest

HELPER = Path(__file__).parents[2] / "roles/jupyterhub/files/wp5-notebook-certs.py"
FILES = {"key": "KEY PEM\n", "cert": "CERT PEM\n", "ca": "CA PEM\n"}


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wp5_notebook_certs", HELPER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = load()
    account = pwd.struct_passwd(("u", "x", 2000, 2000, "", str(tmp_path), "/bin/sh"))
    monkeypatch.setattr(module.pwd, "getpwuid", lambda uid: account)
    monkeypatch.setattr(os, "umask", lambda mask: 0o022)  # the test process keeps its own
    return module


def run(helper: ModuleType, monkeypatch: pytest.MonkeyPatch, payload: object) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(payload)))
    return int(helper.main())


def test_the_files_land_in_the_users_home_for_the_user_alone(
    helper: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    assert run(helper, monkeypatch, FILES) == 0
    folder = tmp_path / ".jupyterhub" / "internal-ssl"
    assert capsys.readouterr().out.strip() == str(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name, text in FILES.items():
        path = folder / f"{name}.pem"
        assert path.read_text() == text
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_link_in_place_of_a_file_is_replaced_not_followed(
    helper: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / ".jupyterhub" / "internal-ssl"
    folder.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("untouched")
    (folder / "key.pem").symlink_to(elsewhere)
    (folder / "key.pem.partial").symlink_to(elsewhere)
    assert run(helper, monkeypatch, FILES) == 0
    assert elsewhere.read_text() == "untouched"
    assert not (folder / "key.pem").is_symlink()
    assert (folder / "key.pem").read_text() == FILES["key"]


def test_input_that_is_not_the_three_texts_is_refused(
    helper: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(helper, monkeypatch, {"key": "k", "cert": 3}) == 2
    assert not (tmp_path / ".jupyterhub").exists()
