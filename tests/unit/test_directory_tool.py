"""The directory tool's add-user and remove-user (roles/directory/files/testbed_directory.py)
against an in-memory directory: the entries and memberships they write, and the checks
they make before writing anything (a name or id already taken, an unknown project, the
token issuer's scopes). python-ldap is not installable here; `FakeDirectory` answers the
few calls the tool makes, as slapd would for these entries. The live directory checks
(testbeds/checks/identity) run the tool against slapd itself."""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from tests.render import REPO

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHSt0vo5AtwUZqKWwqQgtC6RPTFyBQQ/qxVlz27JtkH2 r@t"
BASE = "dc=testbed"
SCOPE_BASE, SCOPE_ONELEVEL, SCOPE_SUBTREE = 0, 1, 2
MOD_ADD, MOD_DELETE, MOD_REPLACE = 0, 1, 2


class LDAPError(Exception):
    pass


class NoSuchObject(LDAPError):
    pass


def _matches(entry: dict[str, list[bytes]], search: str) -> bool:
    """The filters the tool uses: (attr=value) and (|(a=b)(c=d)...)."""
    terms = re.findall(r"\((\w+)=([^()]*)\)", search)
    found = [value.encode() in entry.get(attr, []) for attr, value in terms]
    return any(found) if search.startswith("(|") else all(found)


class FakeDirectory:
    def __init__(self) -> None:
        self.entries: dict[str, dict[str, list[bytes]]] = {}
        self.passwords: dict[str, str] = {}

    def search_s(
        self, base: str, scope: int, search: str = "(objectClass=*)", attrs: Any = None
    ) -> list[tuple[str, dict[str, list[bytes]]]]:
        assert scope in (SCOPE_BASE, SCOPE_ONELEVEL, SCOPE_SUBTREE), scope
        if scope == SCOPE_BASE:
            if base not in self.entries:
                raise NoSuchObject(base)
            return [(base, self.entries[base])]
        found = []
        for dn, entry in self.entries.items():
            parent = dn.split(",", 1)[1]
            below = parent == base if scope == SCOPE_ONELEVEL else dn.endswith("," + base)
            if below and (search == "(objectClass=*)" or _matches(entry, search)):
                found.append((dn, entry))
        return found

    def add_s(self, dn: str, modlist: list[tuple[str, list[bytes]]]) -> None:
        assert dn not in self.entries, dn
        self.entries[dn] = dict(modlist)

    def modify_s(self, dn: str, changes: list[tuple[int, str, list[bytes]]]) -> None:
        entry = self.entries[dn]
        for op, attr, values in changes:
            if op == MOD_ADD:
                entry[attr] = [*entry.get(attr, []), *values]
            elif op == MOD_DELETE:
                entry[attr] = [v for v in entry.get(attr, []) if v not in values]
            else:
                entry[attr] = list(values)

    def delete_s(self, dn: str) -> None:
        del self.entries[dn]

    def passwd_s(self, dn: str, old: None, new: str) -> None:
        assert old is None and dn in self.entries
        self.passwords[dn] = new


@pytest.fixture(scope="module")
def tool() -> Any:
    """The tool, imported with python-ldap's names the fake directory speaks."""
    ldap = types.ModuleType("ldap")
    ldap.modlist = types.ModuleType("ldap.modlist")  # type: ignore[attr-defined]
    ldap.__dict__.update(
        SCOPE_BASE=SCOPE_BASE, SCOPE_ONELEVEL=SCOPE_ONELEVEL, SCOPE_SUBTREE=SCOPE_SUBTREE,
        MOD_ADD=MOD_ADD, MOD_DELETE=MOD_DELETE, MOD_REPLACE=MOD_REPLACE,
        LDAPError=LDAPError, NO_SUCH_OBJECT=NoSuchObject,
    )  # fmt: skip
    ldap.modlist.addModlist = lambda attrs: list(attrs.items())  # type: ignore[attr-defined]
    ldap.modlist.modifyModlist = lambda old, new: [  # type: ignore[attr-defined]
        (MOD_REPLACE, key, value) for key, value in new.items() if old.get(key) != value
    ]
    saved = {name: sys.modules.get(name) for name in ("ldap", "ldap.modlist")}
    sys.modules["ldap"], sys.modules["ldap.modlist"] = ldap, ldap.modlist  # type: ignore[attr-defined]
    # Named by its place in the repository, as mutation testing (pyproject.toml) names it.
    name = "roles.directory.files.testbed_directory"
    path = REPO / "roles" / "directory" / "files" / "testbed_directory.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value
    return module


@pytest.fixture
def directory() -> FakeDirectory:
    made = FakeDirectory()
    made.entries[f"cn=physics,ou=projects,{BASE}"] = {
        "objectClass": [b"posixGroup"],
        "cn": [b"physics"],
        "gidNumber": [b"3001"],
        "memberUid": [b"researcher"],
    }
    return made


def args(**given: Any) -> argparse.Namespace:
    values = {
        "name": "alice",
        "uid": 2101,
        "ssh_key_file": None,
        "password_file": None,
        "comment": "",
        "project": [],
    }
    return argparse.Namespace(**(values | given))


def settings(tool: Any, **given: Any) -> Any:
    return tool.Settings(BASE, None, **given)


def test_add_user_writes_the_account_its_group_password_and_projects(
    tool: Any, directory: FakeDirectory, tmp_path: Path
) -> None:
    (tmp_path / "key").write_text(f"\n{KEY}\n\n")
    (tmp_path / "password").write_text("correct horse battery\n")
    result = tool.add_user(
        directory,
        settings(tool, token_scopes=("openid", "storage.read:/")),
        args(
            ssh_key_file=str(tmp_path / "key"),
            password_file=str(tmp_path / "password"),
            comment="Alice A",
            project=["physics"],
        ),
    )
    person, group = f"uid=alice,ou=people,{BASE}", f"cn=alice,ou=groups,{BASE}"
    account = tool.Account("alice", 2101, 2101, "Alice A", ssh_keys=(KEY,))
    assert directory.entries[person] == tool.encoded(
        tool.account_attrs(account, tool.ADDED_BY_TOOL, ("openid", "storage.read:/"))
    )
    assert directory.entries[group] == tool.encoded(
        tool.group_attrs("alice", 2101, (), tool.ADDED_BY_TOOL)
    )
    assert directory.passwords == {person: "correct horse battery"}
    physics = directory.entries[f"cn=physics,ou=projects,{BASE}"]
    assert physics["memberUid"] == [b"researcher", b"alice"]
    assert result.done == [
        f"added {group}",
        f"added {person}",
        "set the password of alice",
        "added alice to project physics",
    ]


def test_add_user_without_password_or_project_writes_only_the_two_entries(
    tool: Any, directory: FakeDirectory
) -> None:
    result = tool.add_user(directory, settings(tool), args())
    assert result.done == [f"added cn=alice,ou=groups,{BASE}", f"added uid=alice,ou=people,{BASE}"]
    assert directory.passwords == {}
    assert directory.entries[f"cn=physics,ou=projects,{BASE}"]["memberUid"] == [b"researcher"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"project": ["chem"]}, "--project: no project 'chem' (known: physics)"),
        ({"name": "researcher"}, "NAME: 'researcher' exists already"),
        # Its group holds the id too: the directory names either first.
        ({"uid": 2001}, f"--uid: 2001 is in use by cn=researcher,ou=groups,{BASE}"),
    ],
)
def test_add_user_refuses_what_is_taken_or_unknown_and_writes_nothing(
    tool: Any, directory: FakeDirectory, given: dict[str, Any], message: str
) -> None:
    tool.add_user(directory, settings(tool), args(name="researcher", uid=2001))
    before = {dn: dict(entry) for dn, entry in directory.entries.items()}
    with pytest.raises(tool.BadInput) as refused:
        tool.add_user(directory, settings(tool), args(**given))
    assert str(refused.value) == message
    assert directory.entries == before


def test_a_failed_account_entry_takes_its_new_group_away(
    tool: Any, directory: FakeDirectory, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_add = directory.add_s

    def add(dn: str, modlist: Any) -> None:
        if dn.startswith("uid="):
            raise LDAPError("constraint violation")
        real_add(dn, modlist)

    monkeypatch.setattr(directory, "add_s", add)
    with pytest.raises(LDAPError):
        tool.add_user(directory, settings(tool), args())
    assert f"cn=alice,ou=groups,{BASE}" not in directory.entries


def test_remove_user_takes_the_account_its_group_and_memberships(
    tool: Any, directory: FakeDirectory
) -> None:
    tool.add_user(directory, settings(tool), args(project=["physics"]))
    result = tool.remove_user(directory, settings(tool), args())
    assert result.done == [
        "removed alice from project physics",
        f"deleted uid=alice,ou=people,{BASE}",
        f"deleted cn=alice,ou=groups,{BASE}",
    ]
    assert set(directory.entries) == {f"cn=physics,ou=projects,{BASE}"}
    assert directory.entries[f"cn=physics,ou=projects,{BASE}"]["memberUid"] == [b"researcher"]
    with pytest.raises(tool.BadInput, match=r"^NAME: no account 'alice'$"):
        tool.remove_user(directory, settings(tool), args())


def test_scopes_naming_the_account_are_registered_with_the_issuer_first(
    tool: Any, directory: FakeDirectory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls"
    seed = tmp_path / "glewlwyd-seed"
    seed.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho \'{{"changed": true}}\'\n')
    seed.chmod(0o755)
    monkeypatch.setattr(tool, "REGISTER_SCOPES", seed)
    scopes = ("openid", "storage.create:/users/{user}")
    result = tool.add_user(directory, settings(tool, token_scopes=scopes), args())
    assert calls.read_text() == "--user-scopes storage.create:/users/alice\n"
    assert result.done[0] == "registered the scopes of alice with the token issuer"
    person = directory.entries[f"uid=alice,ou=people,{BASE}"]
    assert person["tokenScope"] == [b"openid", b"storage.create:/users/alice"]
    seed.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho \'{{"changed": false}}\'\n')
    again = tool.add_user(
        directory, settings(tool, token_scopes=scopes), args(name="bob", uid=2102)
    )
    assert not any("registered" in line for line in again.done)
    seed.write_text("#!/bin/sh\necho 'issuer down' >&2\nexit 3\n")
    with pytest.raises(RuntimeError, match=r"glewlwyd-seed --user-scopes: issuer down$"):
        tool.add_user(directory, settings(tool, token_scopes=scopes), args(name="eve", uid=2103))
    monkeypatch.setattr(tool, "REGISTER_SCOPES", tmp_path / "missing")
    with pytest.raises(tool.BadInput, match=r"^token_scopes: scopes naming \{user\} need"):
        tool.add_user(directory, settings(tool, token_scopes=scopes), args(name="eve", uid=2103))


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"ssh_key_file": "key"}, "--ssh-key-file: not one OpenSSH public key"),
        ({"comment": "a:b"}, "--comment: printable text without ':' expected"),
        ({"project": ["Bad"]}, "--project: 'Bad' is not an account or project name"),
        ({"project": ["chem"]}, "--project: no project 'chem' (known: maths, physics)"),
        ({"password_file": "password"}, "--password-file: one line of 12 to 128"),
    ],
)
def test_add_user_names_the_option_at_fault(
    tool: Any, directory: FakeDirectory, tmp_path: Path, given: dict[str, Any], message: str
) -> None:
    directory.entries[f"cn=maths,ou=projects,{BASE}"] = {
        "objectClass": [b"posixGroup"],
        "cn": [b"maths"],
    }
    (tmp_path / "key").write_text("ssh-dss AAAAB3NzaC1kc3M= an old key type\n")
    (tmp_path / "password").write_text("x" * 11)
    files = {k: str(tmp_path / v) for k, v in given.items() if k.endswith("_file")}
    with pytest.raises(tool.BadInput) as refused:
        tool.add_user(directory, settings(tool), args(**(given | files)))
    assert str(refused.value).startswith(message), str(refused.value)


@pytest.mark.parametrize("length", [12, 128])
def test_a_password_of_12_to_128_characters_is_taken(
    tool: Any, directory: FakeDirectory, tmp_path: Path, length: int
) -> None:
    (tmp_path / "password").write_text("p" * length + "\n")
    tool.add_user(directory, settings(tool), args(password_file=str(tmp_path / "password")))
    assert directory.passwords == {f"uid=alice,ou=people,{BASE}": "p" * length}
