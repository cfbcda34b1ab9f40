#!/usr/bin/python3
"""Manage the testbed's directory (OpenLDAP) as root over ldapi:// (SASL EXTERNAL).

  testbed-directory apply SEED.json       make the definition's entries exactly so (idempotent)
  testbed-directory add-user NAME --uid N [--project P]... [--ssh-key-file F]
                             [--password-file F] [--comment C]
  testbed-directory remove-user NAME       delete an account added here or by the definition
  testbed-directory show                   list people and projects (no password hashes)

Every entry this tool writes carries a `description` saying who made it, and `apply`
removes only entries it made itself that the definition no longer names. Output is one
JSON line on stdout (`changed` and what was done); it never holds a password or a hash.
Bad input exits 2 with one line naming the field."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import ldap
import ldap.modlist

CONFIG = Path("/etc/ldap/testbed-directory.json")
FROM_DEFINITION = "testbed definition"
ADDED_BY_TOOL = "added by testbed-directory"
NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
# Whole values only (fullmatch). Public keys: type, base64 body, optional printable comment.
SSH_KEY = re.compile(
    r"(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/=]+( [ -~]{0,200})?"
)
GECOS = re.compile(r"[ -~]{0,128}")
# An OAuth2 scope (space-separated in requests, so no spaces), e.g. storage.read:/data.
SCOPE = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
# A scope of the configuration may name its holder: `storage.create:/users/{user}` is
# `storage.create:/users/alice` for alice, so that each account writes in its own area.
SCOPE_TEMPLATE = re.compile(r"([A-Za-z0-9_.:/-]|\{user\}){1,128}")
HOLDER = "{user}"
# Where the token issuer (on this node) learns an account's own scopes: glewlwyd grants
# a user only scopes it knows, so those naming the account are registered when it is made.
REGISTER_SCOPES = Path("/usr/local/sbin/glewlwyd-seed")
ID_RANGE = range(1000, 60000)


class BadInput(Exception):
    """Input that must not reach the directory; the message names the field."""


@dataclass(frozen=True)
class Project:
    name: str
    gid: int
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    comment: str = ""
    shell: str = "/bin/bash"
    password_hash: str | None = None
    ssh_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Seed:
    reader_password_hash: str
    projects: tuple[Project, ...]
    accounts: tuple[Account, ...]


# Names no directory account may take: a node's local account of that name would get the
# directory's keys (and, for a job credential's prefix, a web service its token check).
RESERVED_PREFIXES = ("ci-job-",)
LOCAL_ACCOUNT_FILES = (Path("/etc/passwd"), Path("/etc/group"))


@dataclass
class Settings:
    base_dn: str
    homes_root: str | None  # where homes are created (this node holds them), or None
    # Scopes every account holds (tokenScope), which the token issuer may grant it; in
    # each, `{user}` stands for the account's name.
    token_scopes: tuple[str, ...] = ()
    # The definition's range of user and group ids: none below it (system accounts, the
    # cloud images' default user at 1000), none above it.
    uid_min: int = 2000
    uid_max: int = 59999
    # Local accounts of the testbed's nodes (services' users), on top of this node's own.
    reserved_names: frozenset[str] = frozenset()

    def scopes_of(self, name: str) -> tuple[str, ...]:
        """The scopes the account `name` holds, its own name put in where a scope names it."""
        return tuple(scope.replace(HOLDER, name) for scope in self.token_scopes)

    @property
    def own_scopes(self) -> bool:
        """Whether some scope differs from one account to the next."""
        return any(HOLDER in scope for scope in self.token_scopes)

    @property
    def people(self) -> str:
        return f"ou=people,{self.base_dn}"

    @property
    def groups(self) -> str:
        return f"ou=groups,{self.base_dn}"

    @property
    def projects(self) -> str:
        return f"ou=projects,{self.base_dn}"

    @property
    def services(self) -> str:
        return f"ou=services,{self.base_dn}"


@dataclass
class Result:
    done: list[str] = field(default_factory=list)

    def emit(self) -> None:
        print(json.dumps({"changed": bool(self.done), "done": self.done}))


def checked_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise BadInput(f"{where}: {value!r} is not an account or project name")
    return value


def checked_id(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in ID_RANGE:
        raise BadInput(f"{where}: {value!r} is not a number from 1000 to 59999")
    return value


def checked_new_name(value: object, where: str, settings: Settings) -> str:
    """A name for a new account: no local account's, on this node or any node's services."""
    name = checked_name(value, where)
    if name in settings.reserved_names or name in local_account_names():
        raise BadInput(f"{where}: {name!r} is a local system account's name")
    if name.startswith(RESERVED_PREFIXES):
        raise BadInput(f"{where}: names starting {', '.join(RESERVED_PREFIXES)} are reserved")
    return name


def local_account_names() -> set[str]:
    """The names in this node's own account files (not the directory's, which SSSD adds)."""
    names = set()
    for path in LOCAL_ACCOUNT_FILES:
        if path.is_file():
            names |= {line.split(":", 1)[0] for line in path.read_text().splitlines() if line}
    return names


def checked_user_id(value: object, where: str, settings: Settings) -> int:
    number = checked_id(value, where)
    if not settings.uid_min <= number <= settings.uid_max:
        raise BadInput(
            f"{where}: {number} is outside the testbed's user range "
            f"{settings.uid_min}-{settings.uid_max}"
        )
    return number


def checked_key(value: object, where: str) -> str:
    if not isinstance(value, str) or not SSH_KEY.fullmatch(value.strip()):
        raise BadInput(f"{where}: not one OpenSSH public key")
    return value.strip()


def checked_comment(value: object, where: str) -> str:
    if not isinstance(value, str) or not GECOS.fullmatch(value) or ":" in value:
        raise BadInput(f"{where}: printable text without ':' expected")
    return value


def checked_scopes(values: object, where: str) -> tuple[str, ...]:
    """Scopes as configured: each an OAuth2 scope, where `{user}` may stand for a name."""
    if not isinstance(values, list) or not all(
        isinstance(v, str) and SCOPE_TEMPLATE.fullmatch(v) for v in values
    ):
        raise BadInput(
            f"{where}: a list of OAuth2 scopes (letters, digits, _ . : / - and {HOLDER}) expected"
        )
    return tuple(values)


def register_own_scopes(settings: Settings, name: str, result: Result) -> None:
    """Make the token issuer know the scopes that name this account (a no-op without any)."""
    own = [t.replace(HOLDER, name) for t in settings.token_scopes if HOLDER in t]
    if not own:
        return
    if not REGISTER_SCOPES.is_file():
        raise BadInput(
            f"token_scopes: scopes naming {HOLDER} need the token issuer on this node "
            f"({REGISTER_SCOPES} is missing)"
        )
    registered = subprocess.run(
        [str(REGISTER_SCOPES), "--user-scopes", *own], capture_output=True, text=True, check=False
    )
    if registered.returncode != 0:
        raise RuntimeError(f"{REGISTER_SCOPES} --user-scopes: {registered.stderr.strip()}")
    if json.loads(registered.stdout).get("changed"):
        result.done.append(f"registered the scopes of {name} with the token issuer")


def read_seed(path: Path) -> Seed:
    raw = json.loads(path.read_text())
    projects = tuple(
        Project(
            name=checked_name(p["name"], f"projects[{i}].name"),
            gid=checked_id(p["gid"], f"projects[{i}].gid"),
            members=tuple(checked_name(m, f"projects[{i}].members") for m in p.get("members", [])),
        )
        for i, p in enumerate(raw["projects"])
    )
    accounts = tuple(
        Account(
            name=checked_name(a["name"], f"users[{i}].name"),
            uid=checked_id(a["uid"], f"users[{i}].uid"),
            gid=checked_id(a.get("gid", a["uid"]), f"users[{i}].gid"),
            comment=checked_comment(a.get("comment", ""), f"users[{i}].comment"),
            shell=a.get("shell", "/bin/bash"),
            password_hash=a.get("password_hash"),
            ssh_keys=tuple(checked_key(k, f"users[{i}].ssh_keys") for k in a.get("ssh_keys", [])),
        )
        for i, a in enumerate(raw["users"])
    )
    return Seed(raw["reader_password_hash"], projects, accounts)


def connect() -> ldap.ldapobject.LDAPObject:
    conn = ldap.initialize("ldapi:///")
    conn.sasl_non_interactive_bind_s("EXTERNAL")
    return conn


def encoded(attrs: dict[str, list[str]]) -> dict[str, list[bytes]]:
    return {k: [v.encode() for v in values] for k, values in attrs.items() if values}


def read_entry(conn: ldap.ldapobject.LDAPObject, dn: str) -> dict[str, list[bytes]] | None:
    try:
        found = conn.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["*"])
    except ldap.NO_SUCH_OBJECT:
        return None
    return found[0][1] if found else None


def ensure(
    conn: ldap.ldapobject.LDAPObject, dn: str, attrs: dict[str, list[str]], result: Result
) -> None:
    """Create the entry, or change the attributes named in `attrs` to exactly these values."""
    wanted = encoded(attrs)
    current = read_entry(conn, dn)
    if current is None:
        conn.add_s(dn, ldap.modlist.addModlist(wanted))
        result.done.append(f"added {dn}")
        return
    old = {k: current[k] for k in attrs if current.get(k)}
    changes = ldap.modlist.modifyModlist(old, wanted)
    if changes:
        conn.modify_s(dn, changes)
        result.done.append(f"updated {dn} ({', '.join(sorted({c[1] for c in changes}))})")


ACCOUNT_CLASSES = ["inetOrgPerson", "posixAccount", "ldapPublicKey", "tokenHolder"]
# Storage scopes of the WLCG token profile; an account holding one gets tokens of the
# profile's version (claim wlcg.ver, which storage endpoints read the scopes by).
WLCG_STORAGE_SCOPE = re.compile(r"storage\.(read|create|modify|stage):/")
WLCG_VERSION = "1.0"


def token_attrs(scopes: tuple[str, ...]) -> dict[str, list[str]]:
    """What the token issuer reads of an account: its scopes and token profile."""
    wlcg = any(WLCG_STORAGE_SCOPE.match(scope) for scope in scopes)
    return {
        "objectClass": ACCOUNT_CLASSES,
        "tokenScope": list(scopes),
        "tokenWlcgVersion": [WLCG_VERSION] if wlcg else [],
    }


def account_attrs(account: Account, made_by: str, scopes: tuple[str, ...]) -> dict[str, list[str]]:
    return {
        **token_attrs(scopes),
        "uid": [account.name],
        "cn": [account.comment or account.name],
        "sn": [account.name],
        "uidNumber": [str(account.uid)],
        "gidNumber": [str(account.gid)],
        "homeDirectory": [f"/home/{account.name}"],
        "loginShell": [account.shell],
        "gecos": [account.comment],
        "userPassword": [account.password_hash] if account.password_hash else [],
        "sshPublicKey": list(account.ssh_keys),
        "description": [made_by],
    }


def group_attrs(
    name: str, gid: int, members: tuple[str, ...], made_by: str
) -> dict[str, list[str]]:
    return {
        "objectClass": ["posixGroup"],
        "cn": [name],
        "gidNumber": [str(gid)],
        "memberUid": sorted(members),
        "description": [made_by],
    }


def made_here(conn: ldap.ldapobject.LDAPObject, base: str, made_by: str) -> set[str]:
    found = conn.search_s(base, ldap.SCOPE_ONELEVEL, f"(description={made_by})", ["cn", "uid"])
    return {dn for dn, _ in found}


def create_home(settings: Settings, account: Account, result: Result) -> None:
    if settings.homes_root is None:
        return
    home = Path(settings.homes_root) / account.name
    if home.exists():
        return
    home.mkdir(mode=0o700)
    os.chown(home, account.uid, account.gid)
    result.done.append(f"created {home}")


def check_seed(seed: Seed, settings: Settings) -> None:
    """The definition's accounts and projects keep to the same rules as add-user's."""
    for i, account in enumerate(seed.accounts):
        checked_new_name(account.name, f"users[{i}].name", settings)
        checked_user_id(account.uid, f"users[{i}].uid", settings)
        checked_user_id(account.gid, f"users[{i}].gid", settings)
    for i, project in enumerate(seed.projects):
        checked_new_name(project.name, f"projects[{i}].name", settings)
        checked_user_id(project.gid, f"projects[{i}].gid", settings)


def apply(conn: ldap.ldapobject.LDAPObject, settings: Settings, seed: Seed) -> Result:
    check_seed(seed, settings)
    result = Result()
    base = settings.base_dn
    top = base.split(",")[0].split("=", 1)[1]
    ensure(
        conn, base, {"objectClass": ["dcObject", "organization"], "dc": [top], "o": [top]}, result
    )
    for unit in ("people", "groups", "projects", "services"):
        ensure(
            conn, f"ou={unit},{base}", {"objectClass": ["organizationalUnit"], "ou": [unit]}, result
        )
    ensure(
        conn,
        f"cn=reader,{settings.services}",
        {
            "objectClass": ["applicationProcess", "simpleSecurityObject"],
            "cn": ["reader"],
            "userPassword": [seed.reader_password_hash],
            "description": ["reads accounts and groups for the nodes (SSSD) and Slurm"],
        },
        result,
    )
    # Existing members added by hand (add-user --project) stay in a seeded project.
    for project in seed.projects:
        dn = f"cn={project.name},{settings.projects}"
        current = read_entry(conn, dn) or {}
        by_hand = {m.decode() for m in current.get("memberUid", [])} - {
            a.name for a in seed.accounts
        }
        kept = tuple(m for m in by_hand if read_entry(conn, f"uid={m},{settings.people}"))
        members = tuple(sorted(set(project.members) | set(kept)))
        ensure(conn, dn, group_attrs(project.name, project.gid, members, FROM_DEFINITION), result)
    for account in seed.accounts:
        ensure(
            conn,
            f"cn={account.name},{settings.groups}",
            group_attrs(account.name, account.gid, (), FROM_DEFINITION),
            result,
        )
        ensure(
            conn,
            f"uid={account.name},{settings.people}",
            account_attrs(account, FROM_DEFINITION, settings.scopes_of(account.name)),
            result,
        )
    # Accounts added with add-user hold the same scopes, also after the definition changes them.
    for dn in sorted(made_here(conn, settings.people, ADDED_BY_TOOL)):
        name = dn.split(",", 1)[0].removeprefix("uid=")
        ensure(conn, dn, token_attrs(settings.scopes_of(name)), result)
        register_own_scopes(settings, name, result)
    wanted = (
        {f"uid={a.name},{settings.people}" for a in seed.accounts}
        | {f"cn={a.name},{settings.groups}" for a in seed.accounts}
        | {f"cn={p.name},{settings.projects}" for p in seed.projects}
    )
    for unit in (settings.people, settings.groups, settings.projects):
        for dn in sorted(made_here(conn, unit, FROM_DEFINITION) - wanted):
            conn.delete_s(dn)
            result.done.append(f"deleted {dn} (no longer in the definition)")
    return result


def project_entries(
    conn: ldap.ldapobject.LDAPObject, settings: Settings
) -> dict[str, dict[str, list[bytes]]]:
    return {
        attrs["cn"][0].decode(): attrs
        for _, attrs in conn.search_s(
            settings.projects, ldap.SCOPE_ONELEVEL, "(objectClass=posixGroup)"
        )
    }


def add_user(
    conn: ldap.ldapobject.LDAPObject, settings: Settings, args: argparse.Namespace
) -> Result:
    result = Result()
    name = checked_new_name(args.name, "NAME", settings)
    uid = checked_user_id(args.uid, "--uid", settings)
    keys: tuple[str, ...] = ()
    if args.ssh_key_file:
        lines = [ln for ln in Path(args.ssh_key_file).read_text().splitlines() if ln.strip()]
        keys = tuple(checked_key(ln, "--ssh-key-file") for ln in lines)
    password = None
    if args.password_file:
        password = Path(args.password_file).read_text().strip()
        if not 12 <= len(password) <= 128 or not password.isprintable():
            raise BadInput("--password-file: one line of 12 to 128 printable characters expected")
    account = Account(name, uid, uid, checked_comment(args.comment, "--comment"), ssh_keys=keys)
    projects = project_entries(conn, settings)
    for project in args.project:
        if checked_name(project, "--project") not in projects:
            raise BadInput(
                f"--project: no project {project!r} (known: {', '.join(sorted(projects))})"
            )
    dn = f"uid={name},{settings.people}"
    if read_entry(conn, dn) is not None:
        raise BadInput(f"NAME: {name!r} exists already")
    taken = conn.search_s(
        settings.base_dn, ldap.SCOPE_SUBTREE, f"(|(uidNumber={uid})(gidNumber={uid}))", ["dn"]
    )
    if taken:
        raise BadInput(f"--uid: {uid} is in use by {taken[0][0]}")
    # First the issuer: a scope no account holds grants nothing, an account without its
    # scopes at the issuer would get no token.
    register_own_scopes(settings, name, result)
    group = f"cn={name},{settings.groups}"
    ensure(conn, group, group_attrs(name, uid, (), ADDED_BY_TOOL), result)
    try:
        ensure(conn, dn, account_attrs(account, ADDED_BY_TOOL, settings.scopes_of(name)), result)
    except ldap.LDAPError:
        conn.delete_s(group)  # no group without its account (its gid would stay taken)
        raise
    if password is not None:
        # slapd hashes it (sha512-crypt); the password itself is stored nowhere.
        conn.passwd_s(dn, None, password)
        result.done.append(f"set the password of {name}")
    for project in args.project:
        conn.modify_s(
            f"cn={project},{settings.projects}", [(ldap.MOD_ADD, "memberUid", [name.encode()])]
        )
        result.done.append(f"added {name} to project {project}")
    create_home(settings, account, result)
    return result


def remove_user(
    conn: ldap.ldapobject.LDAPObject, settings: Settings, args: argparse.Namespace
) -> Result:
    """The account, its own group and its project memberships; the home stays (its data is
    the user's, not this tool's)."""
    result = Result()
    name = checked_name(args.name, "NAME")
    dn = f"uid={name},{settings.people}"
    if read_entry(conn, dn) is None:
        raise BadInput(f"NAME: no account {name!r}")
    for project, attrs in project_entries(conn, settings).items():
        if name.encode() in attrs.get("memberUid", []):
            conn.modify_s(
                f"cn={project},{settings.projects}",
                [(ldap.MOD_DELETE, "memberUid", [name.encode()])],
            )
            result.done.append(f"removed {name} from project {project}")
    conn.delete_s(dn)
    result.done.append(f"deleted {dn}")
    group = f"cn={name},{settings.groups}"
    if read_entry(conn, group) is not None:
        conn.delete_s(group)
        result.done.append(f"deleted {group}")
    return result


def show(conn: ldap.ldapobject.LDAPObject, settings: Settings) -> None:
    people = conn.search_s(
        settings.people, ldap.SCOPE_ONELEVEL, "(uid=*)", ["uid", "uidNumber", "description"]
    )
    print(
        json.dumps(
            {
                "people": [
                    {
                        "name": a["uid"][0].decode(),
                        "uid": int(a["uidNumber"][0]),
                        "made_by": a["description"][0].decode(),
                    }
                    for _, a in sorted(people)
                ],
                "projects": {
                    name: sorted(m.decode() for m in attrs.get("memberUid", []))
                    for name, attrs in sorted(project_entries(conn, settings).items())
                },
            }
        )
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="testbed-directory", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("apply").add_argument("seed", type=Path)
    add = commands.add_parser("add-user")
    add.add_argument("name")
    add.add_argument("--uid", type=int, required=True)
    add.add_argument("--project", action="append", default=[])
    add.add_argument("--ssh-key-file")
    add.add_argument("--password-file", help="file holding the password (never an argument)")
    add.add_argument("--comment", default="")
    commands.add_parser("remove-user").add_argument("name")
    commands.add_parser("show")
    args = parser.parse_args(argv)
    config = json.loads(CONFIG.read_text())
    try:
        settings = Settings(
            config["base_dn"],
            config.get("homes_root"),
            checked_scopes(config.get("token_scopes", []), f"{CONFIG}: token_scopes"),
            uid_min=int(config["uid_min"]),
            uid_max=int(config["uid_max"]),
            reserved_names=frozenset(
                checked_name(n, f"{CONFIG}: reserved_names") for n in config["reserved_names"]
            ),
        )
        conn = connect()
        if args.command == "apply":
            apply(conn, settings, read_seed(args.seed)).emit()
        elif args.command == "add-user":
            add_user(conn, settings, args).emit()
        elif args.command == "remove-user":
            remove_user(conn, settings, args).emit()
        else:
            show(conn, settings)
    except BadInput as error:
        print(f"testbed-directory: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        print(f"testbed-directory: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
