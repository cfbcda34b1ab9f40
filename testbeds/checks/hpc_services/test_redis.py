"""NoSQL: Redis over TLS with one ACL user per researcher, used from the login node and from
jobs, its data on disk across restarts."""

from __future__ import annotations

import pytest

from testbeds.checks.helpers import assert_service_running, wait_for

# The user's login shell has REDIS_CLI_ARGS (TLS, CA, host, port, user) from the role.
CLI = 'REDISCLI_AUTH="$(cat "$REDIS_PASSWORD_FILE")" redis-cli $REDIS_CLI_ARGS --no-raw'


@pytest.mark.nodes("redis")
def test_redis_running_tls_only(host, testbed):
    """redis-server runs; it listens on its TLS port and the plaintext port is closed."""
    assert_service_running(host, "redis-server")
    port = testbed.value("redis_port")
    assert host.socket(f"tcp://0.0.0.0:{port}").is_listening
    assert not host.socket("tcp://0.0.0.0:6379").is_listening
    conf = host.file("/etc/redis/redis.conf").content_string
    assert "\nport 0\n" in conf


@pytest.mark.nodes("redis")
def test_acl_file_holds_no_password_and_is_private(host, testbed):
    """The ACL file is readable by redis only and holds password hashes, not passwords; the
    default (anonymous) user is off."""
    acl = host.file("/etc/redis/users.acl")
    assert (acl.user, acl.group, acl.mode) == ("root", "redis", 0o640)
    text = acl.content_string
    password = (testbed.secrets_dir / f"redis-{testbed.research_user}-password").read_text()
    assert password.strip() not in text
    assert "user default off" in text


def test_user_writes_and_a_job_reads_back(testbed, user_shell):
    """The research user sets a key under their prefix from the login node, over TLS with
    their own password; a Slurm job on a compute node reads it back."""
    login = testbed.host(testbed.group("slurm_login")[0])
    user = testbed.research_user
    wrote = user_shell(login, f"{CLI} set {user}:check hello-from-login")
    assert wrote.rc == 0 and wrote.stdout.strip() == "OK", wrote.stdout + wrote.stderr
    read = user_shell(login, f"srun -N1 bash -lc '{CLI} get {user}:check'")
    assert read.rc == 0, read.stderr
    assert read.stdout.strip().strip('"') == "hello-from-login", read.stdout


def test_anonymous_plaintext_and_foreign_keys_refused(testbed, user_shell):
    """Without a password the server refuses; plaintext is not served; the user may not
    write outside their own and the shared prefixes."""
    login = testbed.host(testbed.group("slurm_login")[0])
    anonymous = user_shell(login, "redis-cli $REDIS_CLI_ARGS --no-auth-warning ping")
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr or anonymous.rc != 0, anonymous.stdout
    assert "PONG" not in anonymous.stdout
    plain = user_shell(login, "redis-cli -h $REDIS_HOST -p $REDIS_PORT ping")
    assert "PONG" not in plain.stdout
    foreign = user_shell(login, f"{CLI} set someoneelse:key x")
    assert "NOPERM" in foreign.stdout + foreign.stderr, foreign.stdout
    shared = user_shell(login, f"{CLI} set shared:{testbed.research_user} x")
    assert shared.stdout.strip() == "OK", shared.stdout + shared.stderr


@pytest.mark.parametrize(
    "command",
    [
        "function flush",
        "function delete somebodys_library",
        "function load \"#!lua name=mine\\nredis.register_function('f', function() return 1 end)\"",
        "script flush",
        'script load "return 1"',
        "scan 0",
        "keys '*'",
        "randomkey",
    ],
)
def test_a_user_cannot_manage_shared_scripts_or_list_others_keys(testbed, user_shell, command):
    """Functions and cached scripts are shared by every user, and key listings show every
    user's key names: a research user's ACL refuses each of these commands."""
    login = testbed.host(testbed.group("slurm_login")[0])
    out = user_shell(login, f"{CLI} {command}")
    assert "NOPERM" in out.stdout + out.stderr, out.stdout + out.stderr


def test_a_users_script_runs_within_the_users_keys(testbed, user_shell):
    """EVAL runs a user's script on the user's own keys, and not on another user's."""
    login = testbed.host(testbed.group("slurm_login")[0])
    user = testbed.research_user
    script = "\"return redis.call('set', KEYS[1], 'by-script')\""
    own = user_shell(login, f"{CLI} eval {script} 1 {user}:scripted")
    assert own.stdout.strip().strip('"') == "OK", own.stdout + own.stderr
    foreign = user_shell(login, f"{CLI} eval {script} 1 someoneelse:scripted")
    assert "NOPERM" in foreign.stdout + foreign.stderr, foreign.stdout + foreign.stderr


def test_data_survives_a_restart(testbed, user_shell):
    """A key written before redis-server restarts is there afterwards (append-only file)."""
    server = testbed.host(testbed.group("redis")[0])
    login = testbed.host(testbed.group("slurm_login")[0])
    key = f"{testbed.research_user}:durable"
    assert user_shell(login, f"{CLI} set {key} kept").stdout.strip() == "OK"
    server.run("systemctl restart redis-server")
    assert wait_for(lambda: server.service("redis-server").is_running, timeout=30)

    def value() -> str:
        return user_shell(login, f"{CLI} get {key}").stdout.strip().strip('"')

    assert wait_for(lambda: value() == "kept", timeout=30), value()
