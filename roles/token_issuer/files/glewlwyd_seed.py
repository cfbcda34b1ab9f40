#!/usr/bin/python3
"""Make glewlwyd's database hold what the testbed needs, and nothing it should not:

- no built-in administrator (the package's `admin` with its published password) and no
  user store of its own: users come from the directory (LDAP user module, read-only), each
  holding the scopes its entry's `tokenScope` names (written by the directory tool only);
- the OpenID Connect plugin, signing with an EC P-256 key made here once (ES256);
- the definition's clients, confidential, their secrets stored as glewlwyd's PBKDF2 hash
  (a client with the device grant lets a directory user on a terminal get a token of the
  user's own scopes, RFC 8628);
  a client with storage scopes (storage.read:/path, ...) gets WLCG-profile tokens
  (claim wlcg.ver), for an audience it names with `resource` (RFC 8707) among its own;
- the definition's accounts known by their directory uid as subject (`sub`): glewlwyd
  would make up a random one at a user's first token, and services that map a token to an
  account by its subject and issuer (Rucio) must know it beforehand.

A user scope may name its holder (`storage.create:/users/{user}`): each account then holds
its own (`storage.create:/users/alice`), registered here for the definition's accounts and,
by the directory tool, for each account added later.

Usage: glewlwyd-seed SEED.json, or glewlwyd-seed --user-scopes SCOPE... (register scopes
users are given, and nothing else). Prints one JSON line (`changed`, what was done), never
a secret. Run as root; glewlwyd reads clients and modules from the database when it
starts, so restart it when the seed `changed` (a new scope needs no restart).

glewlwyd opens its SQLite database with no busy timeout: a write of another process at the
moment glewlwyd writes makes glewlwyd's query fail at once, and the request answers 500
(seen as a device authorization refused while the directory tool registered an added
account's scopes). So only the seed, which `up` runs before anyone uses the issuer, writes
the database; `--user-scopes`, run while glewlwyd serves, asks glewlwyd's administration
API to add the scopes (glewlwyd then makes every write itself). It holds the API key the
seed made: 32 letters and digits in a root-only file, in the database only as its hash."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import sqlite3
import ssl
import string
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

DATABASE = "/var/lib/dbconfig-common/sqlite3/glewlwyd/glewlwyd"
# How long this tool waits for glewlwyd's own writes (glewlwyd never waits for it).
BUSY_TIMEOUT_S = 30
SEED_FILE = Path("/etc/glewlwyd/testbed-seed.json")
# The administration API's key (glewlwyd takes keys of exactly 32 characters) and the name
# glewlwyd records as its holder.
API_KEY_FILE = Path("/etc/glewlwyd/admin-api-key")
API_KEY_LENGTH = 32
API_KEY_HOLDER = "testbed-directory"
API_TIMEOUT_S = 30
KEY_ID = "testbed-1"
PLUGIN = "oidc"
# A directory uid as glewlwyd would take it for a username (and Rucio for an identity).
USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
PBKDF2_ITERATIONS = 1000  # glewlwyd's own default for its SQLite client store
SALT_ALPHABET = string.ascii_letters + string.digits
# The definition's OAuth2 grant names, as glewlwyd's client property authorization_type.
AUTHORIZATION_TYPES = {
    "client_credentials": "client_credentials",
    "authorization_code": "code",
    "device_code": "device_authorization",
}
# Grants a user approves (the others are the client's own).
USER_GRANTS = ("authorization_code", "device_code")
# A scope users are given, once its holder's name is put in for `{user}`.
SCOPE = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
HOLDER = "{user}"
# Scopes of the WLCG token profile's storage authorisations; a client given one gets
# WLCG-profile tokens, which storage endpoints (XRootD with SciTokens) read by that claim.
WLCG_STORAGE_SCOPE = re.compile(r"^storage\.(read|create|modify|stage):/")
WLCG_VERSION = "1.0"
# An audience a token may be asked for: an https URL (glewlwyd takes no other), no fragment.
AUDIENCE = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")


@dataclass(frozen=True)
class Client:
    name: str
    grants: tuple[str, ...]
    scopes: tuple[str, ...]
    redirect_uris: tuple[str, ...]
    audiences: tuple[str, ...]
    secret: str

    @property
    def wlcg_storage(self) -> bool:
        return any(WLCG_STORAGE_SCOPE.match(scope) for scope in self.scopes)


def signing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """This testbed's token signing key, made once (mode 0600, root)."""
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    return loaded


def private_jwks(key: ec.EllipticCurvePrivateKey) -> str:
    numbers = key.private_numbers()

    def b64(value: int) -> str:
        return base64.urlsafe_b64encode(value.to_bytes(32, "big")).rstrip(b"=").decode()

    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "kid": KEY_ID,
        "alg": "ES256",
        "use": "sig",
        "x": b64(numbers.public_numbers.x),
        "y": b64(numbers.public_numbers.y),
        "d": b64(numbers.private_value),
    }
    return json.dumps({"keys": [jwk]}, sort_keys=True)


def pbkdf2_hash(secret: str, salt: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    """glewlwyd's format: base64(PBKDF2-HMAC-SHA256(secret, salt) + salt),iterations."""
    derived = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt.encode(), iterations, 32)
    return base64.b64encode(derived + salt.encode()).decode() + f",{iterations}"


def new_secret_hash(secret: str) -> str:
    """The secret's hash with a fresh salt (glewlwyd's own salts are 16 letters/digits)."""
    return pbkdf2_hash(secret, "".join(secrets.choice(SALT_ALPHABET) for _ in range(16)))


def secret_matches(stored: str | None, secret: str) -> bool:
    if not stored or "," not in stored:
        return False
    digest, iterations = stored.rsplit(",", 1)
    salt = base64.b64decode(digest)[-16:].decode()
    return pbkdf2_hash(secret, salt, int(iterations)) == stored


def checked_user_scope(scope: str) -> str:
    """A scope users are given, once `{user}` is put in: an OAuth2 scope."""
    if not SCOPE.fullmatch(scope):
        raise ValueError(f"user_scopes: {scope!r} is not an OAuth2 scope")
    return scope


def api_key(path: Path = API_KEY_FILE) -> str:
    """The administration API's key, made once (mode 0600, root)."""
    if not path.exists():
        key = "".join(secrets.choice(SALT_ALPHABET) for _ in range(API_KEY_LENGTH))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
    return path.read_text().strip()


def api_key_hash(key: str) -> str:
    """The key as glewlwyd stores and looks it up (hash_algorithm SHA512, URL-safe)."""
    digest = base64.b64encode(hashlib.sha512(key.encode()).digest()).decode()
    return f"{{SHA512}}{digest}".replace("/", "_").replace("+", "-")


def user_module_parameters(directory: dict[str, str]) -> dict[str, object]:
    return {
        "uri": directory["uri"],
        "bind-dn": directory["bind_dn"],
        "bind-password": directory["bind_password"],
        "search-scope": "one",
        "page-size": 50,
        "base-search": f"ou=people,{directory['base_dn']}",
        "filter": "objectClass=posixAccount",  # glewlwyd wraps it: (&(<filter>)(uid=...))
        "username-property": "uid",
        "name-property": "cn",
        "email-property": "mail",
        # An account's scopes are its tokenScope values as they stand (no correspondence):
        # openid for logins through the issuer, storage.* for its own storage tokens.
        "scope-property": "tokenScope",
        # The WLCG profile's version, on accounts with storage scopes (user tokens' wlcg.ver).
        "data-format": {"wlcg_ver": {"property": "tokenWlcgVersion", "multiple": False}},
        "rdn-property": "uid",
        "password-property": "userPassword",
        "password-algorithm": "CRYPT_SHA512",
        "object-class": ["inetOrgPerson", "posixAccount"],
    }


def plugin_parameters(seed: dict[str, object], jwks: str) -> dict[str, object]:
    return {
        "iss": seed["issuer"],
        "jwks-private": jwks,
        "default-kid": KEY_ID,
        "jwks-show": True,
        "access-token-duration": seed["access_token_seconds"],
        "refresh-token-duration": 3600,
        "code-duration": 300,
        "refresh-token-rolling": False,
        "allow-non-oidc": True,
        "auth-type-code-enabled": True,
        "auth-type-token-enabled": False,
        "auth-type-id-token-enabled": False,
        "auth-type-none-enabled": False,
        "auth-type-password-enabled": False,
        "auth-type-client-enabled": True,
        "auth-type-refresh-enabled": True,
        # Device authorization (RFC 8628): a user on a terminal approves at the issuer.
        "auth-type-device-enabled": True,
        "device-authorization-expiration": 600,
        "device-authorization-interval": 2,
        "scope": [],
        # Audiences: a client asks for one of its own (property `resource`) with RFC 8707's
        # `resource`; without it glewlwyd makes the audience the scope list.
        "resource-allowed": True,
        "resource-client-property": "resource",
        # WLCG-profile tokens: the version claim comes from the client's property (client
        # credentials) or the user's (a user's own tokens).
        "additional-parameters": [
            {"client-parameter": "wlcg_ver", "token-parameter": "wlcg.ver"},
            {"user-parameter": "wlcg_ver", "token-parameter": "wlcg.ver"},
        ],
        # Relying parties (JupyterHub) name the user by the directory's uid, not by `sub`
        # (an opaque id glewlwyd makes up).
        "claims": [
            {
                "name": "preferred_username",
                "user-property": "username",
                "type": "string",
                "mandatory": True,
            }
        ],
    }


class Seeder:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.done: list[str] = []

    def one(self, sql: str, *args: object) -> tuple[object, ...] | None:
        row: tuple[object, ...] | None = self.db.execute(sql, args).fetchone()
        return row

    def remove_builtin_users(self) -> None:
        if self.one("SELECT gu_id FROM g_user WHERE gu_username = 'admin'"):
            self.db.execute("DELETE FROM g_user_password WHERE gu_id IN (SELECT gu_id FROM g_user)")
            self.db.execute("DELETE FROM g_user_scope_user")
            self.db.execute("DELETE FROM g_user")
            self.done.append("removed the built-in administrator")
        if self.one("SELECT 1 FROM g_user_module_instance WHERE gumi_module = 'database'"):
            self.db.execute("DELETE FROM g_user_module_instance WHERE gumi_module = 'database'")
            self.done.append("removed the issuer's own user store")

    def instance(
        self, table: str, prefix: str, module: str, name: str, params: str, **extra: int
    ) -> None:
        """Insert or update one module instance, by name, to exactly these parameters."""
        current = self.one(f"SELECT {prefix}_parameters FROM {table} WHERE {prefix}_name = ?", name)
        if current is None:
            columns = ["module", "name", "display_name", "parameters", *extra]
            self.db.execute(
                f"INSERT INTO {table} ({', '.join(f'{prefix}_{c}' for c in columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})",
                (module, name, name, params, *extra.values()),
            )
            self.done.append(f"added {module} instance {name}")
        elif current[0] != params:
            self.db.execute(
                f"UPDATE {table} SET {prefix}_parameters = ? WHERE {prefix}_name = ?",
                (params, name),
            )
            self.done.append(f"updated {module} instance {name}")

    def directory_users(
        self, directory: dict[str, str], user_scopes: list[str], accounts: list[str]
    ) -> None:
        params = json.dumps(user_module_parameters(directory), sort_keys=True)
        self.instance(
            "g_user_module_instance", "gumi", "ldap", "directory", params, order=0, readonly=1
        )
        # glewlwyd grants a user only scopes it knows: a scope naming its holder is known
        # once per account.
        self.user_scopes(held_scopes(user_scopes, accounts))

    def user_scopes(self, scopes: list[str]) -> None:
        for scope in scopes:
            self.scope(checked_user_scope(scope), for_users=True)

    def subjects(self, usernames: list[str]) -> None:
        """Each user's public subject is its uid; one glewlwyd made up before is replaced."""
        for username in usernames:
            if not USERNAME.fullmatch(username):
                raise ValueError(f"subjects: {username!r} is not a directory uid")
            where = (
                "gposi_plugin_name = ? AND gposi_username = ? "
                "AND gposi_client_id IS NULL AND gposi_sector_identifier_uri IS NULL"
            )
            row = self.one(f"SELECT gposi_sub FROM gpo_subject_identifier WHERE {where}",
                           PLUGIN, username)  # fmt: skip
            if row is None:
                self.db.execute(
                    "INSERT INTO gpo_subject_identifier (gposi_plugin_name, gposi_sub, "
                    "gposi_username) VALUES (?, ?, ?)",
                    (PLUGIN, username, username),
                )
                self.done.append(f"{username} is subject {username}")
            elif row[0] != username:
                self.db.execute(
                    f"UPDATE gpo_subject_identifier SET gposi_sub = ? WHERE {where}",
                    (username, PLUGIN, username),
                )
                self.done.append(f"{username} is subject {username} (was another)")

    def api_key(self, key: str) -> None:
        """The administration API lets the key's holder in (the seed's own key only)."""
        hashed = api_key_hash(key)
        if not self.one("SELECT 1 FROM g_api_key WHERE gak_token_hash = ? AND gak_enabled = 1",
                        hashed):  # fmt: skip
            self.db.execute(
                "INSERT INTO g_api_key (gak_token_hash, gak_username, gak_issued_for) "
                "VALUES (?, ?, ?)",
                (hashed, API_KEY_HOLDER, "glewlwyd-seed"),
            )
            self.done.append(f"added the administration API key of {API_KEY_HOLDER}")

    def scope(self, name: str, for_users: bool = False) -> int:
        """The scope, known to glewlwyd; one users are given needs their password (the
        directory's) in the session that grants it."""
        row = self.one("SELECT gs_password_required FROM g_scope WHERE gs_name = ?", name)
        if row is None:
            self.db.execute(
                "INSERT INTO g_scope (gs_name, gs_display_name, gs_description, "
                "gs_password_required, gs_password_max_age) VALUES (?, ?, ?, ?, 0)",
                (name, name, f"scope {name}", int(for_users)),
            )
            self.done.append(f"added scope {name}")
        elif for_users and not row[0]:
            self.db.execute(
                "UPDATE g_scope SET gs_password_required = 1 WHERE gs_name = ?", (name,)
            )
            self.done.append(f"scope {name} needs the user's password")
        if not self.one("SELECT 1 FROM g_client_scope WHERE gcs_name = ?", name):
            self.db.execute("INSERT INTO g_client_scope (gcs_name) VALUES (?)", (name,))
        row = self.one("SELECT gcs_id FROM g_client_scope WHERE gcs_name = ?", name)
        assert row is not None
        return int(str(row[0]))

    def client(self, client: Client) -> None:
        row = self.one(
            "SELECT gc_id, gc_password FROM g_client WHERE gc_client_id = ?", client.name
        )
        client_id: object
        if row is None:
            client_id = self.db.execute(
                "INSERT INTO g_client (gc_client_id, gc_name, gc_confidential, gc_password, "
                "gc_enabled) VALUES (?, ?, 1, ?, 1)",
                (client.name, client.name, new_secret_hash(client.secret)),
            ).lastrowid
            self.done.append(f"added client {client.name}")
        else:
            client_id = row[0]
            if not secret_matches(str(row[1]), client.secret):
                self.db.execute(
                    "UPDATE g_client SET gc_password = ? WHERE gc_id = ?",
                    (new_secret_hash(client.secret), client_id),
                )
                self.done.append(f"changed the secret of client {client.name}")
        properties = (
            [("authorization_type", AUTHORIZATION_TYPES[g]) for g in client.grants]
            # A user's grant comes with a refresh token; glewlwyd redeems it only for a
            # client allowed the refresh grant (and only while the user is in the directory).
            + (
                [("authorization_type", "refresh_token")]
                if set(client.grants) & set(USER_GRANTS)
                else []
            )
            + [("redirect_uri", u) for u in client.redirect_uris]
            + [("token_endpoint_auth_method", "client_secret_basic")]
            + [("resource", audience) for audience in client.audiences]
            + ([("wlcg_ver", WLCG_VERSION)] if client.wlcg_storage else [])
        )
        self.client_rows(
            "g_client_property",
            ("gcp_name", "gcp_value"),
            client_id,
            properties,
            f"set the grants, redirects and audiences of client {client.name}",
        )
        scopes = [(self.scope(s),) for s in client.scopes]
        self.client_rows(
            "g_client_scope_client",
            ("gcs_id",),
            client_id,
            scopes,
            f"set the scopes of client {client.name}",
        )

    def client_rows(
        self,
        table: str,
        columns: tuple[str, ...],
        client_id: object,
        wanted: Sequence[tuple[object, ...]],
        what: str,
    ) -> None:
        """Make a client's rows of `table` (its `columns` besides gc_id) exactly `wanted`."""
        names = ", ".join(columns)
        current = self.db.execute(f"SELECT {names} FROM {table} WHERE gc_id = ?", (client_id,))
        if sorted(current) == sorted(wanted):
            return
        self.db.execute(f"DELETE FROM {table} WHERE gc_id = ?", (client_id,))
        self.db.executemany(
            f"INSERT INTO {table} (gc_id, {names}) VALUES (?, {', '.join('?' for _ in columns)})",
            [(client_id, *row) for row in wanted],
        )
        self.done.append(what)


def held_scopes(templates: list[str], accounts: list[str]) -> list[str]:
    """The scopes the accounts hold: a scope naming `{user}` once per account."""
    held: list[str] = []
    for template in templates:
        names = (
            [template.replace(HOLDER, a) for a in accounts] if HOLDER in template else [template]
        )
        held.extend(name for name in names if name not in held)
    return held


def read_clients(seed: dict[str, object]) -> list[Client]:
    """The seed's clients; an audience that is not a plain https URL is refused, naming
    the client and the field, before the database is touched."""
    clients = []
    entries: list[dict[str, Any]] = seed["clients"]  # type: ignore[assignment]
    for i, c in enumerate(entries):
        audiences = tuple(c.get("audiences", []))
        for j, audience in enumerate(audiences):
            if not isinstance(audience, str) or not AUDIENCE.fullmatch(audience):
                raise ValueError(
                    f"token_issuer_clients[{i}].audiences[{j}]: {audience!r} is not an "
                    "https:// URL (host, optional port and path)"
                )
        clients.append(
            Client(
                c["name"],
                tuple(c["grants"]),
                tuple(c["scopes"]),
                tuple(c.get("redirect_uris", [])),
                audiences,
                c["secret"],
            )
        )
    return clients


@contextmanager
def issuer_database(path: str = DATABASE) -> Iterator[sqlite3.Connection]:
    """The issuer's database in write-ahead-log mode (kept in the file: set once, it
    stays), one transaction committed when the block ends, then closed. SQLite gives the
    log files the database file's owner when root makes them."""
    with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        with db:
            yield db


class IssuerApi:
    """glewlwyd's administration API, with the seed's key."""

    def __init__(self, base_url: str, ca_file: str, key: str) -> None:
        self.base_url = base_url
        self.context = ssl.create_default_context(cafile=ca_file)
        self.key = key

    def call(self, method: str, path: str, body: object = None) -> tuple[int, str]:
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=API_TIMEOUT_S) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode(errors="replace")

    def user_scope(self, name: str) -> bool:
        """The scope known, given only after the user's password; whether it was added."""
        path = "/scope/" + urllib.parse.quote(checked_user_scope(name), safe="")
        status, text = self.call("GET", path)
        if status == 200 and json.loads(text).get("password_required") is True:
            return False
        if status not in (200, 404):
            raise RuntimeError(f"read scope {name}: HTTP {status}")
        body = {"display_name": name, "description": f"scope {name}",
                "password_required": True, "password_max_age": 0}  # fmt: skip
        if status == 200:  # known, as a client's scope: users' need the password
            status, _ = self.call("PUT", path, body)
        else:
            status, _ = self.call("POST", "/scope/", {"name": name, **body})
        if status != 200:
            raise RuntimeError(f"write scope {name}: HTTP {status}")
        return True


def admin_api(seed: dict[str, Any], key: str) -> IssuerApi:
    """The administration API of the issuer the seed describes (`<issuer>/..`)."""
    base = str(seed["issuer"]).rsplit("/", 1)[0]
    return IssuerApi(base, str(seed["ca_file"]), key)


def register_user_scopes(scopes: list[str]) -> int:
    """Only make glewlwyd know these scopes, as scopes users are given (through its API,
    with the key the seed made: this never makes one)."""
    added = []
    try:
        api = admin_api(json.loads(SEED_FILE.read_text()), API_KEY_FILE.read_text().strip())
        for scope in scopes:
            if api.user_scope(scope):
                added.append(f"scope {scope} for users")
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"glewlwyd-seed: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    print(json.dumps({"changed": bool(added), "done": added}))
    return 0


def main(seed_file: str) -> int:
    seed = json.loads(Path(seed_file).read_text())
    try:
        clients = read_clients(seed)
        held = held_scopes(list(seed.get("user_scopes", [])), list(seed.get("subjects", [])))
        if any(not SCOPE.fullmatch(scope) for scope in held):
            raise ValueError(f"user_scopes: not OAuth2 scopes: {held}")
    except ValueError as exc:
        print(f"glewlwyd-seed: {exc}", file=sys.stderr)
        return 2
    key = signing_key(Path(seed["signing_key_file"]))
    with issuer_database() as db:
        seeder = Seeder(db)
        seeder.remove_builtin_users()
        seeder.api_key(api_key())
        seeder.directory_users(
            seed["directory"], list(seed.get("user_scopes", [])), list(seed.get("subjects", []))
        )
        params = json.dumps(plugin_parameters(seed, private_jwks(key)), sort_keys=True)
        seeder.instance("g_plugin_module_instance", "gpmi", "oidc", PLUGIN, params)
        for client in clients:
            seeder.client(client)
        seeder.subjects(list(seed.get("subjects", [])))
    print(json.dumps({"changed": bool(seeder.done), "done": seeder.done}))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--user-scopes"]:
        sys.exit(register_user_scopes(sys.argv[2:]))
    sys.exit(main(sys.argv[1]))
