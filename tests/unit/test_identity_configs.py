"""The identity layer's configuration, rendered by Ansible from the roles: the directory's
seed holds crypt hashes only and is stable, slapd has no plaintext or anonymous way in,
SSSD checks the directory's certificate, and the directory tool refuses bad input."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import re
import sqlite3
import sys
import types
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.render import REPO, render_role_template

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHSt0vo5AtwUZqKWwqQgtC6RPTFyBQQ/qxVlz27JtkH2 r@t"
ACCOUNTS = [
    {"name": "researcher", "uid": 2001, "comment": "research user", "projects": ["physics"]},
    {"name": "student", "uid": 2002},
]
PROJECTS = [{"name": "physics", "gid": 3001}]


def render_seed(tmp_path: Path) -> str:
    secrets = tmp_path / "secrets"
    return render_role_template(
        "directory",
        "seed.json.j2",
        tmp_path,
        hosts={"controller": {"testbed_secrets_dir": str(secrets)}},
        groups={"directory": ["controller"]},
        on_host="controller",
        extra_vars={
            "users_accounts": ACCOUNTS,
            "users_projects": PROJECTS,
            "users_password_logins": True,
            "__directory_public_keys": {
                "results": [
                    {
                        "item": {"name": "researcher"},
                        "content": base64.b64encode(KEY.encode()).decode(),
                    }
                ]
            },
        },
    )


def test_seed_holds_hashes_members_and_keys_and_is_stable(tmp_path: Path) -> None:
    first = render_seed(tmp_path)
    seed = json.loads(first)
    assert seed["projects"] == [{"name": "physics", "gid": 3001, "members": ["researcher"]}]
    researcher, student = seed["users"]
    assert researcher["ssh_keys"] == [KEY] and student["ssh_keys"] == []
    assert (researcher["gid"], student["gid"]) == (2001, 2002)
    for value in (seed["reader_password_hash"], researcher["password_hash"]):
        # Standard rounds (no "rounds=" field): slapd checks the hash at every bind.
        assert value.startswith("{CRYPT}$6$") and "rounds=" not in value, value
    for secret in (tmp_path / "secrets").iterdir():
        assert secret.read_text().strip() not in first, f"{secret.name} in the seed"
    assert render_seed(tmp_path) == first, "same inputs, different seed: every up would change"


def test_slapd_has_no_plaintext_password_or_anonymous_access(tmp_path: Path) -> None:
    config = render_role_template(
        "directory",
        "slapd.ldif.j2",
        tmp_path,
        hosts={"controller": {}},
        groups={"directory": ["controller"]},
        on_host="controller",
    )
    assert "olcRootPW" not in config
    assert "olcDisallows: bind_anon" in config
    assert "olcRequires: authc" in config
    assert "to attrs=userPassword by anonymous auth by * none" in config
    assert "olcTLSCertificateKeyFile: /etc/ldap/tls/key.pem" in config
    # passwords set later (testbed-directory add-user --password-file) are hashed by slapd
    assert "olcPasswordHash: {CRYPT}" in config


def test_sssd_verifies_the_directory_and_bounds_its_cache(tmp_path: Path) -> None:
    conf = render_role_template(
        "directory_client",
        "sssd.conf.j2",
        tmp_path,
        hosts={"controller": {}, "login": {"testbed_secrets_dir": str(tmp_path / "s")}},
        groups={"directory": ["controller"], "directory_client": ["login"]},
        on_host="login",
    )
    lines = {line.partition(" = ")[0]: line.partition(" = ")[2] for line in conf.splitlines()}
    assert lines["ldap_uri"] == "ldaps://controller:636"
    assert lines["ldap_tls_reqcert"] == "demand"
    assert lines["entry_cache_timeout"] == lines["memcache_timeout"] == "20"
    assert lines["cache_credentials"] == "false"


@pytest.fixture(scope="module")
def tool() -> Any:
    """The node-side directory tool, imported with a stand-in for python-ldap (only its
    input checks run here; they never reach the directory)."""
    stub = types.ModuleType("ldap")
    stub.modlist = types.ModuleType("ldap.modlist")  # type: ignore[attr-defined]
    sys.modules.setdefault("ldap", stub)
    sys.modules.setdefault("ldap.modlist", stub.modlist)  # type: ignore[attr-defined]
    path = REPO / "roles" / "directory" / "files" / "testbed_directory.py"
    # Named by its place in the repository, as mutation testing (pyproject.toml) names it.
    spec = importlib.util.spec_from_file_location("roles.directory.files.testbed_directory", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("user", "field"),
    [
        ({"name": "x;rm -rf /", "uid": 2001}, "users[0].name"),
        ({"name": "ok", "uid": 0}, "users[0].uid"),
        ({"name": "ok", "uid": True}, "users[0].uid"),
        ({"name": "ok", "uid": 2001, "comment": "a:b"}, "users[0].comment"),
        (
            {"name": "ok", "uid": 2001, "ssh_keys": ["ssh-ed25519 AAAA\ncommand=x"]},
            "users[0].ssh_keys",
        ),
    ],
)
def test_directory_tool_refuses_bad_seed(
    tool: Any, tmp_path: Path, user: dict[str, Any], field: str
) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"reader_password_hash": "x", "projects": [], "users": [user]}))
    with pytest.raises(tool.BadInput, match="^" + re.escape(field)):
        tool.read_seed(seed)


@pytest.mark.parametrize("password", ["short", "x" * 129, "two\nlines-of-password"])
def test_directory_tool_refuses_a_bad_password_before_touching_the_directory(
    tool: Any, tmp_path: Path, password: str
) -> None:
    secret = tmp_path / "password"
    secret.write_text(password)
    args = tool.argparse.Namespace(
        name="alice",
        uid=2101,
        ssh_key_file=None,
        password_file=str(secret),
        comment="",
        project=[],
    )
    with pytest.raises(tool.BadInput, match="^--password-file"):
        tool.add_user(None, tool.Settings("dc=testbed", None), args)


def add_user_args(tool: Any, name: str, uid: int) -> Any:
    return tool.argparse.Namespace(
        name=name, uid=uid, ssh_key_file=None, password_file=None, comment="", project=[]
    )


@pytest.mark.parametrize(
    ("name", "uid", "message"),
    [
        ("munge", 2990, "NAME: 'munge' is a local system account's name"),
        ("root", 2990, "NAME: 'root' is a local system account's name"),
        ("daemon", 2990, "NAME: 'daemon' is a local system account's name"),  # this node's
        ("ci-job-0123456789ab", 2990, "NAME: names starting ci-job- are reserved"),
        ("u1k", 1000, "--uid: 1000 is outside the testbed's user range 2000-59999"),
        ("u2", 1999, "--uid: 1999 is outside"),
        ("u3", 60000, "--uid: 60000 is not a number"),
    ],
)
def test_directory_tool_refuses_system_names_and_ids_outside_the_range_before_writing(
    tool: Any, name: str, uid: int, message: str
) -> None:
    """add-user never reaches the directory (conn None) with a system account's name, a
    job credential's prefix or an id outside the definition's user range."""
    settings = tool.Settings(
        "dc=testbed", None, uid_min=2000, uid_max=59999, reserved_names=frozenset({"munge"})
    )
    with pytest.raises(tool.BadInput, match="^" + re.escape(message)):
        tool.add_user(None, settings, add_user_args(tool, name, uid))


def test_the_definitions_accounts_keep_to_the_same_rules(tool: Any) -> None:
    settings = tool.Settings("dc=testbed", None, uid_min=2000, uid_max=59999)
    account = tool.Account("ok", 1500, 2500)
    seed = tool.Seed("x", (), (account,))
    with pytest.raises(tool.BadInput, match=r"^users\[0\]\.uid: 1500 is outside"):
        tool.check_seed(seed, settings)
    project = tool.Project("users", 3001)  # Debian's own group
    with pytest.raises(tool.BadInput, match=r"^projects\[0\]\.name: 'users' is a local"):
        tool.check_seed(tool.Seed("x", (project,), ()), settings)


@pytest.fixture(scope="module")
def issuer_seed() -> Any:
    path = REPO / "roles" / "token_issuer" / "files" / "glewlwyd_seed.py"
    spec = importlib.util.spec_from_file_location("glewlwyd_seed", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_client_secrets_are_stored_as_glewlwyds_pbkdf2_and_checked(issuer_seed: Any) -> None:
    stored = issuer_seed.pbkdf2_hash("s3cret-value", "abcdefghijklmnop")
    digest, iterations = stored.rsplit(",", 1)
    assert iterations == "1000" and "s3cret" not in stored
    assert base64.b64decode(digest)[-16:] == b"abcdefghijklmnop"  # the salt rides along
    assert issuer_seed.secret_matches(stored, "s3cret-value")
    assert not issuer_seed.secret_matches(stored, "s3cret-valuE")
    assert not issuer_seed.secret_matches(None, "s3cret-value")


def test_the_signing_key_is_made_once_private_and_published_without_its_secret(
    issuer_seed: Any, tmp_path: Path
) -> None:
    path = tmp_path / "signing-key.pem"
    first = issuer_seed.signing_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    again = issuer_seed.signing_key(path)
    assert first.private_numbers() == again.private_numbers()
    jwk = json.loads(issuer_seed.private_jwks(first))["keys"][0]
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("EC", "P-256", "ES256")


def test_issuer_users_come_only_from_the_directory(issuer_seed: Any) -> None:
    params = issuer_seed.user_module_parameters(
        {
            "uri": "ldaps://controller:636",
            "base_dn": "dc=testbed",
            "bind_dn": "cn=reader,ou=services,dc=testbed",
            "bind_password": "x",
        }
    )
    assert params["uri"].startswith("ldaps://")
    assert params["base-search"] == "ou=people,dc=testbed"
    # An account's scopes are what its entry's tokenScope holds (written by the directory
    # tool only), as they stand: no correspondence maps a value to another scope.
    assert params["scope-property"] == "tokenScope"
    assert "scope-property-match-correspondence" not in params
    assert params["data-format"] == {
        "wlcg_ver": {"property": "tokenWlcgVersion", "multiple": False}
    }


@pytest.mark.parametrize(
    ("scopes", "wlcg"),
    [
        (("openid",), []),
        (("openid", "storage.read:/", "storage.create:/users"), ["1.0"]),
        ((), []),
    ],
)
def test_accounts_hold_their_scopes_and_a_wlcg_version_only_with_storage_scopes(
    tool: Any, scopes: tuple[str, ...], wlcg: list[str]
) -> None:
    """Seeded and added accounts alike carry the scopes the issuer may grant them; the
    WLCG profile's version (their tokens' wlcg.ver) only where one is a storage scope."""
    account = tool.Account("alice", 2101, 2101)
    attrs = tool.account_attrs(account, tool.ADDED_BY_TOOL, scopes)
    assert "tokenHolder" in attrs["objectClass"]
    assert (attrs["tokenScope"], attrs["tokenWlcgVersion"]) == (list(scopes), wlcg)
    assert tool.token_attrs(scopes) == {k: attrs[k] for k in tool.token_attrs(scopes)}


@pytest.mark.parametrize("scopes", [["openid", "a b"], ["x\ny"], "openid", [7]])
def test_directory_tool_refuses_scopes_that_are_not_scopes(tool: Any, scopes: Any) -> None:
    with pytest.raises(tool.BadInput, match="token_scopes"):
        tool.checked_scopes(scopes, "token_scopes")


def test_users_scopes_are_known_and_need_the_users_password(issuer_seed: Any) -> None:
    """The scopes directory accounts may be granted exist in the issuer and are given only
    in a session where the user gave the password; seeding again is a no-op."""
    db = sqlite3.connect(":memory:")
    db.executescript(CLIENT_TABLES)
    db.execute(
        "INSERT INTO g_scope (gs_name, gs_password_required, gs_password_max_age) "
        "VALUES ('openid', 0, 0)"
    )
    seeder = issuer_seed.Seeder(db)
    for scope in ("openid", "storage.create:/users"):
        seeder.scope(scope, for_users=True)
    rows = sorted(db.execute("SELECT gs_name, gs_password_required FROM g_scope"))
    assert rows == [("openid", 1), ("storage.create:/users", 1)]
    again = issuer_seed.Seeder(db)
    for scope in ("openid", "storage.create:/users"):
        again.scope(scope, for_users=True)
    assert again.done == []


def test_a_scope_naming_its_holder_is_each_accounts_own(tool: Any, issuer_seed: Any) -> None:
    """`{user}` in a scope is the account's name: each account holds its own storage area,
    and the issuer knows one such scope per account of the definition (no other's)."""
    templates = ["openid", "storage.read:/", "storage.create:/users/{user}"]
    settings = tool.Settings("dc=testbed", None, tool.checked_scopes(templates, "token_scopes"))
    assert settings.scopes_of("alice") == (
        "openid",
        "storage.read:/",
        "storage.create:/users/alice",
    )
    assert settings.own_scopes and not tool.Settings("dc=t", None, ("openid",)).own_scopes
    assert issuer_seed.held_scopes(templates, ["alice", "bob"]) == [
        "openid",
        "storage.read:/",
        "storage.create:/users/alice",
        "storage.create:/users/bob",
    ]
    db = sqlite3.connect(":memory:")
    db.executescript(CLIENT_TABLES)
    seeder = issuer_seed.Seeder(db)
    seeder.user_scopes(issuer_seed.held_scopes(templates, ["alice"]))
    assert "storage.create:/users/alice" in {
        n for (n,) in db.execute("SELECT gs_name FROM g_scope")
    }
    with pytest.raises(ValueError, match="user_scopes"):
        seeder.user_scopes(["storage.create:/users/{user}"])


@pytest.mark.parametrize("scope", ["storage.create:/users/{name}", "storage.create:/{user", "a}"])
def test_only_the_holders_name_may_be_put_in_a_scope(tool: Any, scope: str) -> None:
    with pytest.raises(tool.BadInput, match="token_scopes"):
        tool.checked_scopes(["openid", scope], "token_scopes")


def test_an_added_account_is_refused_when_the_issuer_cannot_learn_its_scopes(
    tool: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the issuer's tool on the directory's node, an account whose scopes name it
    is refused before anything is written (one line naming the field)."""
    monkeypatch.setattr(tool, "REGISTER_SCOPES", tmp_path / "missing")
    settings = tool.Settings("dc=testbed", None, ("storage.create:/users/{user}",))
    with pytest.raises(tool.BadInput, match=r"^token_scopes: .*issuer"):
        tool.register_own_scopes(settings, "alice", tool.Result())
    done = tool.Result()
    tool.register_own_scopes(tool.Settings("dc=testbed", None, ("openid",)), "alice", done)
    assert done.done == []


def test_issuer_names_users_by_their_directory_uid(issuer_seed: Any) -> None:
    """Relying parties (JupyterHub) read the user's name from `preferred_username`."""
    params = issuer_seed.plugin_parameters(
        {"issuer": "https://c:4593/api/oidc", "access_token_seconds": 600}, "{}"
    )
    claims = {c["name"]: c for c in params["claims"]}
    assert claims["preferred_username"]["user-property"] == "username"
    assert claims["preferred_username"]["mandatory"] is True


CLIENT_TABLES = """
    CREATE TABLE g_client (gc_id INTEGER PRIMARY KEY, gc_client_id TEXT, gc_name TEXT,
        gc_confidential INTEGER, gc_password TEXT, gc_enabled INTEGER);
    CREATE TABLE g_client_property (gc_id INTEGER, gcp_name TEXT, gcp_value TEXT);
    CREATE TABLE g_scope (gs_id INTEGER PRIMARY KEY, gs_name TEXT, gs_display_name TEXT,
        gs_description TEXT, gs_password_required INTEGER, gs_password_max_age INTEGER);
    CREATE TABLE g_client_scope (gcs_id INTEGER PRIMARY KEY, gcs_name TEXT);
    CREATE TABLE g_client_scope_client (gc_id INTEGER, gcs_id INTEGER);
"""


def test_the_seed_never_holds_up_glewlwyd_which_waits_for_no_lock(
    issuer_seed: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """glewlwyd opens its database with no busy timeout (a lock held elsewhere fails its
    query at once: HTTP 500 at the token endpoint). The seed keeps the database in
    write-ahead-log mode, so that registering an added account's scopes commits while
    glewlwyd is in the middle of a read, and glewlwyd reads on while the seed writes."""
    path = tmp_path / "glewlwyd"
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(CLIENT_TABLES)
    with issuer_seed.issuer_database(str(path)):
        pass  # the seed at `up` (glewlwyd not started yet) switches the mode, once
    monkeypatch.setattr(issuer_seed, "BUSY_TIMEOUT_S", 0.5)
    glewlwyd = sqlite3.connect(path, timeout=0, isolation_level=None)
    glewlwyd.execute("BEGIN")
    glewlwyd.execute("SELECT count(*) FROM g_scope").fetchone()  # a read in progress
    with issuer_seed.issuer_database(str(path)) as db:
        issuer_seed.Seeder(db).user_scopes(["storage.create:/users/alice"])
        # The seed's write is not committed yet; glewlwyd still reads, without waiting.
        assert glewlwyd.execute("SELECT count(*) FROM g_scope").fetchone() == (0,)
    glewlwyd.execute("COMMIT")
    assert glewlwyd.execute("SELECT gs_name FROM g_scope").fetchall() == [
        ("storage.create:/users/alice",)
    ]
    assert glewlwyd.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    glewlwyd.close()


def test_clients_get_glewlwyds_grant_names_and_a_second_seed_changes_nothing(
    issuer_seed: Any,
) -> None:
    """The definition's `authorization_code` is glewlwyd's authorization type `code` (the
    hub's login is refused as unauthorized_client otherwise) and `device_code` its
    `device_authorization`, which the plugin allows; seeding again is a no-op."""
    db = sqlite3.connect(":memory:")
    db.executescript(CLIENT_TABLES)
    hub = issuer_seed.Client(
        "jupyterhub", ("authorization_code",), ("openid",), ("https://login:8000/cb",), (), "s" * 32
    )
    seeder = issuer_seed.Seeder(db)
    seeder.client(hub)
    properties = sorted(db.execute("SELECT gcp_name, gcp_value FROM g_client_property"))
    assert properties == [
        ("authorization_type", "code"),
        ("authorization_type", "refresh_token"),
        ("redirect_uri", "https://login:8000/cb"),
        ("token_endpoint_auth_method", "client_secret_basic"),
    ]
    again = issuer_seed.Seeder(db)
    again.client(hub)
    assert again.done == []
    terminal = issuer_seed.Client(
        "cli", ("device_code",), ("storage.read:/",), (), ("https://site1:8443",), "t" * 32
    )
    seeder.client(terminal)
    granted = db.execute(
        "SELECT gcp_value FROM g_client_property JOIN g_client USING (gc_id) "
        "WHERE gc_client_id = 'cli' AND gcp_name = 'authorization_type'"
    )
    assert sorted(row[0] for row in granted) == ["device_authorization", "refresh_token"]
    params = issuer_seed.plugin_parameters(
        {"issuer": "https://c:4593/api/oidc", "access_token_seconds": 600}, "{}"
    )
    assert params["auth-type-device-enabled"] is True


def test_storage_clients_get_wlcg_profile_tokens_for_their_own_audiences(
    issuer_seed: Any,
) -> None:
    """A client with storage scopes carries the WLCG profile version that the plugin puts in
    its tokens, and its audiences as glewlwyd's `resource` property, which the plugin
    checks a token request's `resource` against; other clients get neither."""
    db = sqlite3.connect(":memory:")
    db.executescript(CLIENT_TABLES)
    storage = issuer_seed.Client(
        "mover",
        ("client_credentials",),
        ("storage.read:/", "storage.create:/home"),
        (),
        ("https://site1:8443", "https://site2:8443"),
        "s" * 32,
    )
    hub = issuer_seed.Client("hub", ("authorization_code",), ("openid",), (), (), "t" * 32)
    seeder = issuer_seed.Seeder(db)
    seeder.client(storage)
    seeder.client(hub)
    rows = db.execute(
        "SELECT gc_client_id, gcp_name, gcp_value FROM g_client_property JOIN g_client "
        "USING (gc_id) WHERE gcp_name IN ('resource', 'wlcg_ver')"
    )
    assert sorted(rows) == [
        ("mover", "resource", "https://site1:8443"),
        ("mover", "resource", "https://site2:8443"),
        ("mover", "wlcg_ver", "1.0"),
    ]
    params = issuer_seed.plugin_parameters(
        {"issuer": "https://c:4593/api/oidc", "access_token_seconds": 600}, "{}"
    )
    assert params["resource-allowed"] is True
    assert params["resource-client-property"] == "resource"
    # The version claim from the client (client credentials) or the user (own tokens).
    assert params["additional-parameters"] == [
        {"client-parameter": "wlcg_ver", "token-parameter": "wlcg.ver"},
        {"user-parameter": "wlcg_ver", "token-parameter": "wlcg.ver"},
    ]


@pytest.mark.parametrize(
    "audience",
    [
        "http://site1:8443",
        "https://site1:8443/#x",
        "https://a b",
        "site1",
        8443,
        "https://x\ny",
        "https://ok\n",
    ],
)
def test_seed_refuses_an_audience_that_is_not_an_https_url(issuer_seed: Any, audience: Any) -> None:
    seed = {
        "clients": [
            {"name": "ok", "grants": [], "scopes": [], "secret": "s"},
            {
                "name": "bad",
                "grants": [],
                "scopes": [],
                "audiences": ["https://ok", audience],
                "secret": "s",
            },
        ]
    }
    with pytest.raises(ValueError, match=r"^token_issuer_clients\[1\]\.audiences\[1\]: "):
        issuer_seed.read_clients(seed)


def test_definition_accounts_are_their_uid_as_subject(issuer_seed: Any) -> None:
    """The definition's accounts get their uid as token subject (Rucio maps a token to an
    account by subject and issuer, so it must know it beforehand): a subject glewlwyd made
    up before is replaced, other users' are kept; seeding again is a no-op; a name that is
    no uid is refused before anything is written."""
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE gpo_subject_identifier (gposi_id INTEGER PRIMARY KEY, "
        "gposi_plugin_name TEXT, gposi_username TEXT, gposi_client_id TEXT, "
        "gposi_sector_identifier_uri TEXT, gposi_sub TEXT)"
    )
    db.execute(
        "INSERT INTO gpo_subject_identifier (gposi_plugin_name, gposi_username, gposi_sub) "
        "VALUES ('oidc', 'researcher', 'Xk3rAnd0m'), ('oidc', 'later', 'Qz9made_up')"
    )
    seeder = issuer_seed.Seeder(db)
    seeder.subjects(["researcher", "datamanager"])
    rows = sorted(db.execute("SELECT gposi_username, gposi_sub FROM gpo_subject_identifier"))
    assert rows == [("datamanager", "datamanager"), ("later", "Qz9made_up"),
                    ("researcher", "researcher")]  # fmt: skip
    again = issuer_seed.Seeder(db)
    again.subjects(["researcher", "datamanager"])
    assert again.done == []
    with pytest.raises(ValueError, match="subjects"):
        again.subjects(["x' OR '1'='1"])


def test_directory_tool_reads_a_whole_seed_with_its_defaults(tool: Any, tmp_path: Path) -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOM alice@laptop"
    seed = tmp_path / "seed.json"
    seed.write_text(
        json.dumps(
            {
                "reader_password_hash": "{SSHA}x",
                "projects": [
                    {"name": "physics", "gid": 3001, "members": ["alice"]},
                    {"name": "empty", "gid": 3002},
                ],
                "users": [
                    {
                        "name": "alice",
                        "uid": 2001,
                        "gid": 2500,
                        "comment": "Alice A",
                        "shell": "/bin/zsh",
                        "password_hash": "{SSHA}y",
                        "ssh_keys": [f"  {key}\n"],
                    },
                    {"name": "bob", "uid": 2002},
                ],
            }
        )
    )
    assert tool.read_seed(seed) == tool.Seed(
        "{SSHA}x",
        (tool.Project("physics", 3001, ("alice",)), tool.Project("empty", 3002, ())),
        (
            tool.Account("alice", 2001, 2500, "Alice A", "/bin/zsh", "{SSHA}y", (key,)),
            tool.Account("bob", 2002, 2002, "", "/bin/bash", None, ()),
        ),
    )


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ({"name": "ok", "uid": 2001, "ssh_keys": [7]}, "users[0].ssh_keys: not one OpenSSH"),
        ({"name": "ok", "uid": 2001, "comment": "tab\there"}, "users[0].comment: printable"),
        ({"name": "ok", "uid": 2001, "comment": 5}, "users[0].comment: printable"),
        ({"name": "ok", "uid": 2001, "gid": "x"}, "users[0].gid: 'x' is not a number"),
        ({"name": 5, "uid": 2001}, "users[0].name: 5 is not an account or project name"),
    ],
)
def test_directory_tool_names_the_field_of_each_bad_value(
    tool: Any, tmp_path: Path, user: dict[str, Any], message: str
) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"reader_password_hash": "x", "projects": [], "users": [user]}))
    with pytest.raises(tool.BadInput) as refused:
        tool.read_seed(seed)
    assert str(refused.value).startswith(message), str(refused.value)


@pytest.mark.parametrize(
    ("project", "message"),
    [
        ({"name": "Bad", "gid": 3001}, "projects[0].name: 'Bad' is not an account"),
        ({"name": "ok", "gid": 99}, "projects[0].gid: 99 is not a number from 1000 to 59999"),
        ({"name": "ok", "gid": 3001, "members": ["x;y"]}, "projects[0].members: 'x;y'"),
    ],
)
def test_directory_tool_names_the_field_of_a_bad_project(
    tool: Any, tmp_path: Path, project: dict[str, Any], message: str
) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"reader_password_hash": "x", "projects": [project], "users": []}))
    with pytest.raises(tool.BadInput) as refused:
        tool.read_seed(seed)
    assert str(refused.value).startswith(message), str(refused.value)


def test_directory_entries_are_exactly_the_accounts_and_projects_attributes(tool: Any) -> None:
    """What the directory stores for a person and a project, attribute by attribute (SSSD,
    sshd and the token issuer read these names)."""
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOM alice@laptop"
    alice = tool.Account("alice", 2101, 2500, "Alice A", "/bin/zsh", "{SSHA}h", (key,))
    assert tool.account_attrs(alice, "made by x", ("storage.read:/",)) == {
        "objectClass": ["inetOrgPerson", "posixAccount", "ldapPublicKey", "tokenHolder"],
        "tokenScope": ["storage.read:/"],
        "tokenWlcgVersion": ["1.0"],
        "uid": ["alice"],
        "cn": ["Alice A"],
        "sn": ["alice"],
        "uidNumber": ["2101"],
        "gidNumber": ["2500"],
        "homeDirectory": ["/home/alice"],
        "loginShell": ["/bin/zsh"],
        "gecos": ["Alice A"],
        "userPassword": ["{SSHA}h"],
        "sshPublicKey": [key],
        "description": ["made by x"],
    }
    bob = tool.account_attrs(tool.Account("bob", 2102, 2102), "made by x", ())
    assert (bob["cn"], bob["gecos"], bob["userPassword"], bob["sshPublicKey"]) == (
        ["bob"],
        [""],
        [],
        [],
    )
    assert tool.group_attrs("physics", 3001, ("zoe", "alice"), "made by x") == {
        "objectClass": ["posixGroup"],
        "cn": ["physics"],
        "gidNumber": ["3001"],
        "memberUid": ["alice", "zoe"],
        "description": ["made by x"],
    }


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        (
            {"accounts": [("ok", 2001, 1999)]},
            "users[0].gid: 1999 is outside the testbed's user range 2000-59999",
        ),
        ({"accounts": [("root", 2001, 2001)]}, "users[0].name: 'root' is a local system"),
        (
            {"projects": [("physics", 1999)]},
            "projects[0].gid: 1999 is outside the testbed's user range 2000-59999",
        ),
    ],
)
def test_the_seeds_ids_and_names_keep_to_the_range_and_name_the_field(
    tool: Any, seed: dict[str, Any], message: str
) -> None:
    settings = tool.Settings("dc=testbed", None, uid_min=2000, uid_max=59999)
    accounts = tuple(tool.Account(*a) for a in seed.get("accounts", []))
    projects = tuple(tool.Project(*p) for p in seed.get("projects", []))
    with pytest.raises(tool.BadInput) as refused:
        tool.check_seed(tool.Seed("x", projects, accounts), settings)
    assert str(refused.value).startswith(message), str(refused.value)


def test_the_id_range_is_inclusive_and_takes_whole_numbers_only(tool: Any) -> None:
    settings = tool.Settings("dc=testbed", None, uid_min=2000, uid_max=2999)
    assert tool.checked_user_id(2000, "--uid", settings) == 2000
    assert tool.checked_user_id(2999, "--uid", settings) == 2999
    for value in (2001.0, True, "2001"):
        with pytest.raises(tool.BadInput, match=r"^--uid: .* is not a number from 1000"):
            tool.checked_user_id(value, "--uid", settings)


def test_a_new_name_is_checked_as_a_name_first_and_against_every_local_file(
    tool: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    passwd, group = tmp_path / "passwd", tmp_path / "group"
    passwd.write_text("svc:x:990:990::/nonexistent:/usr/sbin/nologin\n")
    group.write_text("staff:x:50:\n")
    monkeypatch.setattr(tool, "LOCAL_ACCOUNT_FILES", (passwd, group))
    settings = tool.Settings("dc=testbed", None)
    for taken in ("svc", "staff"):
        with pytest.raises(tool.BadInput, match=f"^NAME: '{taken}' is a local system"):
            tool.checked_new_name(taken, "NAME", settings)
    with pytest.raises(tool.BadInput, match=r"^NAME: 'x;y' is not an account or project name$"):
        tool.checked_new_name("x;y", "NAME", settings)


def test_the_administration_api_key_is_made_once_private_and_stored_hashed(
    issuer_seed: Any, tmp_path: Path
) -> None:
    """The key the directory tool uses for glewlwyd's administration API: 32 letters and
    digits (glewlwyd takes no other length) in a root-only file, made once; the database
    holds its SHA-512 as glewlwyd looks it up, and seeding again adds nothing."""
    path = tmp_path / "admin-api-key"
    key = issuer_seed.api_key(path)
    assert len(key) == 32 and key.isalnum() and path.stat().st_mode & 0o777 == 0o600
    assert issuer_seed.api_key(path) == key
    digest = base64.b64encode(hashlib.sha512(key.encode()).digest()).decode()
    assert issuer_seed.api_key_hash(key) == (
        "{SHA512}" + digest.replace("/", "_").replace("+", "-")
    )
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE g_api_key (gak_id INTEGER PRIMARY KEY, gak_token_hash TEXT, "
        "gak_counter INTEGER DEFAULT 0, gak_username TEXT, gak_issued_for TEXT, "
        "gak_enabled INTEGER DEFAULT 1)"
    )
    issuer_seed.Seeder(db).api_key(key)
    again = issuer_seed.Seeder(db)
    again.api_key(key)
    assert again.done == []
    rows = list(db.execute("SELECT gak_token_hash, gak_username FROM g_api_key"))
    assert rows == [(issuer_seed.api_key_hash(key), "testbed-directory")]
    assert key not in rows[0][0]
