#!/usr/bin/python3
"""Make Slurm's accounts and user associations follow the directory's projects.

Each project (a POSIX group under ou=projects) is a Slurm account with organization
"directory"; each member gets an association with it. Members who left lose theirs, and
accounts of projects that are gone are removed. Accounts with another organization (root,
ones made by hand) are never touched. Prints one JSON line: whether anything changed and
what; a user without an association cannot submit (AccountingStorageEnforce)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import ldap

CONFIG = Path("/etc/slurm/directory-sync.json")
ORGANIZATION = "directory"
NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class DirectoryAccess:
    uri: str
    base_dn: str
    bind_dn: str
    password_file: Path
    ca_file: str


def read_projects(access: DirectoryAccess) -> dict[str, set[str]]:
    ldap.set_option(ldap.OPT_X_TLS_CACERTFILE, access.ca_file)
    ldap.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
    ldap.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
    conn = ldap.initialize(access.uri)
    conn.simple_bind_s(access.bind_dn, access.password_file.read_text().strip())
    found = conn.search_s(
        f"ou=projects,{access.base_dn}",
        ldap.SCOPE_ONELEVEL,
        "(objectClass=posixGroup)",
        ["cn", "memberUid"],
    )
    projects: dict[str, set[str]] = {}
    for _, attrs in found:
        name = attrs["cn"][0].decode()
        members = {m.decode() for m in attrs.get("memberUid", [])}
        # Names go to sacctmgr's arguments: only plain account names pass.
        if NAME.fullmatch(name):
            projects[name] = {m for m in members if NAME.fullmatch(m)}
    return projects


def sacctmgr(*args: str) -> str:
    done = subprocess.run(
        ["sacctmgr", "--noheader", "--parsable2", "--immediate", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 and "Nothing" not in done.stdout + done.stderr:
        raise RuntimeError(
            f"sacctmgr {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout


def main() -> int:
    raw = json.loads(CONFIG.read_text())
    access = DirectoryAccess(
        raw["uri"], raw["base_dn"], raw["bind_dn"], Path(raw["password_file"]), raw["ca_file"]
    )
    wanted = read_projects(access)
    managed = {
        line.split("|")[0]
        for line in sacctmgr("show", "account", "format=account,organization").splitlines()
        if line.endswith(f"|{ORGANIZATION}")
    }
    current: set[tuple[str, str]] = set()
    if managed:
        for line in sacctmgr(
            "show", "association", "format=account,user", f"accounts={','.join(sorted(managed))}"
        ).splitlines():
            account, user = line.split("|")[:2]
            if user:
                current.add((account, user))
    want_pairs = {(project, user) for project, users in wanted.items() for user in users}
    done: list[str] = []
    for project in sorted(set(wanted) - managed):
        sacctmgr(
            "add",
            "account",
            project,
            f"organization={ORGANIZATION}",
            f"description=project {project}",
        )
        done.append(f"added account {project}")
    for project, user in sorted(want_pairs - current):
        sacctmgr("add", "user", user, f"account={project}")
        done.append(f"added {user} to {project}")
    for project, user in sorted(current - want_pairs):
        sacctmgr("remove", "user", "where", f"user={user}", f"account={project}")
        done.append(f"removed {user} from {project}")
    for project in sorted(managed - set(wanted)):
        sacctmgr("remove", "account", "where", f"name={project}")
        done.append(f"removed account {project}")
    print(json.dumps({"changed": bool(done), "done": done}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
