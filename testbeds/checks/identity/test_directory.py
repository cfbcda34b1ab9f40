"""One directory of accounts: slapd over TLS only, every node resolving its accounts, SSH
keys and projects through SSSD, Slurm accounts following its projects, and a user added
or removed after `up` gaining or losing access within the stated bound."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testbeds.checks.directory_accounts import NewUser, directory_host
from testbeds.checks.helpers import HubSessions, assert_service_running, wait_for

READER_SECRET = "/etc/slurm/directory-reader.secret"


def base_dn(testbed: Any) -> str:
    return str(testbed.value("directory_base_dn"))


@pytest.mark.nodes("directory")
def test_directory_serves_ldaps_only_and_refuses_anonymous(host, node, testbed):
    """slapd listens on ldaps:// and its local socket only; an unauthenticated search over
    TLS gets nothing; the reader account cannot read password hashes."""
    assert_service_running(host, "slapd")
    port = testbed.value("directory_port")
    assert host.socket(f"tcp://0.0.0.0:{port}").is_listening
    assert not host.socket("tcp://0.0.0.0:389").is_listening
    base = base_dn(testbed)
    ca = testbed.value("directory_ca_file")
    anonymous = host.run(
        f"LDAPTLS_CACERT={ca} ldapsearch -LLL -x -H ldaps://{node}:{port} -b {base} '(uid=*)' uid"
    )
    assert anonymous.rc != 0 and "uid:" not in anonymous.stdout, anonymous.stdout
    reader = host.run(
        f"LDAPTLS_CACERT={ca} ldapsearch -LLL -x -H ldaps://{node}:{port} "
        f"-D cn=reader,ou=services,{base} -y {READER_SECRET} -b ou=people,{base} "
        f"'(uid={testbed.research_user})' uid userPassword sshPublicKey"
    )
    assert reader.rc == 0, reader.stderr
    assert f"uid: {testbed.research_user}" in reader.stdout
    assert "sshPublicKey: ssh-ed25519 " in reader.stdout
    assert "userPassword" not in reader.stdout


@pytest.mark.nodes("directory_client")
def test_accounts_resolve_through_sssd_not_local_files(host, testbed):
    """The research account and its project come from the directory, with the same ids on
    every node; /etc/passwd does not hold it; SSSD's file (with the reader's password) is
    root's alone."""
    assert_service_running(host, "sssd")
    user = testbed.research_user
    entry = host.run(f"getent -s sss passwd {user}")
    assert entry.rc == 0, entry.stderr
    assert entry.stdout.split(":")[2:4] == ["2001", "2001"]
    assert f"\n{user}:" not in "\n" + host.file("/etc/passwd").content_string
    project = host.run("getent -s sss group physics")
    assert project.rc == 0, project.stderr
    assert user in project.stdout.strip().split(":")[3].split(","), project.stdout
    conf = host.file("/etc/sssd/sssd.conf")
    assert (conf.user, conf.mode) == ("root", 0o600)


def test_project_is_the_research_users_slurm_account(testbed):
    """The definition's project is a Slurm account and the research user's association."""
    controller = directory_host(testbed)
    assoc = controller.run(
        f"sacctmgr --noheader --parsable2 show association user={testbed.research_user} "
        "format=account,user"
    )
    assert assoc.rc == 0, assoc.stderr
    assert "physics|" + testbed.research_user in assoc.stdout.split(), assoc.stdout


def test_directory_tool_refuses_bad_input(testbed):
    """A name that is not an account name exits 2 with one line naming the field, and
    nothing is added."""
    controller = directory_host(testbed)
    bad = controller.run("testbed-directory add-user 'x;rm -rf /' --uid 2999")
    assert bad.rc == 2, bad.stdout + bad.stderr
    assert bad.stderr.strip().startswith("testbed-directory: NAME:"), bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    people = controller.run("testbed-directory show")
    assert "x;rm" not in people.stdout


@pytest.mark.parametrize(
    ("name", "uid", "field"),
    [
        ("munge", 2990, "NAME: 'munge' is a local system account's name"),
        ("root", 2991, "NAME: 'root' is a local system account's name"),
        ("ci-job-0123456789ab", 2992, "NAME: names starting ci-job- are reserved"),
        ("u1k", 1000, "--uid: 1000 is outside the testbed's user range"),
    ],
)
def test_directory_tool_refuses_system_names_and_ids_outside_the_user_range(
    testbed, name, uid, field
):
    """A local system account's name (whose holder would then take the directory's SSH
    keys), a job credential's name, or the cloud images' default uid: exit 2, one line
    naming the field, nothing added."""
    controller = directory_host(testbed)
    refused = controller.run(f"testbed-directory add-user {name} --uid {uid}")
    assert refused.rc == 2, refused.stdout + refused.stderr
    assert refused.stderr.strip().startswith(f"testbed-directory: {field}"), refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    people = json.loads(controller.check_output("testbed-directory show"))["people"]
    assert name not in {p["name"] for p in people}


# Nodes of these roles are the cluster's and the services' own: no directory account logs
# in there, so nothing a user runs reaches their loopback-only back ends.
NO_LOGIN_ROLES = frozenset(
    {
        "slurm_controller",
        "slurm_dbd",
        "hpc_gateway",
        "directory",
        "token_issuer",
        "git_server",
        "container_registry",
        "mlflow",
        "buildbot_master",
        "postgresql",
        "xrootd",
        "rucio",
    }
)


def test_directory_users_log_in_only_where_they_work(testbed, newcomers):
    """A directory user with the key the directory holds logs in over SSH to a login node,
    is refused on every compute node where it has no job and on every node of the
    cluster's and the services' own (controller, CI gateway, service, storage, database)."""
    controller = directory_host(testbed)
    user = newcomers.add([])
    gateways = set(testbed.group("hpc_gateway"))
    logins = [n for n in testbed.group("slurm_login") if n not in gateways]
    computes = testbed.group("slurm_compute")
    closed = sorted(
        {n.name for n in testbed.nodes if NO_LOGIN_ROLES & set(n.roles)} - set(logins)
        | set(computes)
    )
    assert closed, "no node the check expects to be closed to directory users"
    # The new account reaches every node's SSSD within its cache period.
    bound = int(testbed.value("directory_client_cache_seconds")) + 10
    for login in logins:
        assert wait_for(lambda n=login: as_user(controller, user, n, "true").rc == 0, bound), login
    let_in = {node: as_user(controller, user, node, "id -u").rc == 0 for node in closed}
    assert not any(let_in.values()), {n: ok for n, ok in let_in.items() if ok}


@pytest.fixture
def hub_login(testbed, newcomers) -> Iterator[Callable[[NewUser], bool]]:
    """Log a new user in to JupyterHub with its password (at the token issuer, or the hub's
    own form without one; HTTPS checked against the testbed CA); true when the hub let the
    user in."""
    sessions = HubSessions.for_testbed(testbed)

    def login(user: NewUser) -> bool:
        answer = sessions.run(user.name, newcomers.password(user), "login", 30)
        return bool(answer["step"] == "login" and answer["status"] == 302)

    yield login
    sessions.close()


def as_user(controller: Any, user: NewUser, login: str, command: str) -> Any:
    """Log in to the login node with the key the directory holds, and run a command."""
    return controller.run(
        f"ssh -i {user.key} -o BatchMode=yes -o StrictHostKeyChecking=yes "
        f"-o ConnectTimeout=10 {user.name}@{login} {shlex.quote(command)}"
    )


def test_user_added_after_up_logs_in_and_submits_then_loses_access(
    testbed, newcomers, hub_login, record_property
):
    """A user added to a project in the directory after `up` (not in the definition) logs
    in to the login node with the key the directory holds, runs a Slurm job under its own
    UID on a compute node and logs in to JupyterHub with its password; a user in no project
    logs in over SSH but can neither submit nor use the hub; once removed, the first can
    neither log in, submit nor use the hub, within the cache and sync periods (the bound)."""
    controller = directory_host(testbed)
    login = testbed.group("slurm_login")[0]
    computes = testbed.group("slurm_compute")
    cache_s = int(testbed.value("directory_client_cache_seconds"))
    sync_s = int(testbed.value("slurm_controller_directory_sync_seconds"))
    bound = cache_s + sync_s + 10

    member = newcomers.add(["physics"])
    outsider = newcomers.add([])
    started = time.monotonic()

    job: dict[str, Any] = {}

    def job_runs() -> bool:
        job["out"] = as_user(controller, member, login, "srun -N1 -t 1 sh -c 'id -u; hostname'")
        return job["out"].rc == 0

    assert wait_for(job_runs, timeout=bound, interval=2), job["out"].stderr
    can_submit_s = time.monotonic() - started
    uid, where = job["out"].stdout.split()
    assert (int(uid), where in computes) == (member.uid, True), job["out"].stdout
    ssh = as_user(controller, outsider, login, "id -u")
    assert ssh.rc == 0 and ssh.stdout.strip() == str(outsider.uid), ssh.stderr
    refused = as_user(controller, outsider, login, "srun -N1 -t 1 true")
    assert refused.rc != 0
    assert "Invalid account" in refused.stderr, refused.stderr
    # The hub reads the project's members through SSSD, which may still hold the group
    # from before the user joined for up to the cache period.
    assert wait_for(lambda: hub_login(member), timeout=bound, interval=2)
    assert not hub_login(outsider)

    removed = controller.run(f"testbed-directory remove-user {member.name}")
    assert removed.rc == 0, removed.stderr
    gone_at = time.monotonic()

    def login_refused() -> bool:
        return as_user(controller, member, login, "true").rc != 0

    def submit_refused() -> bool:
        # Slurm's association is gone, and root's submission in the user's name is refused
        # (by slurmctld for the association, or already by sbatch once the uid is unknown).
        assoc = controller.run(
            f"sacctmgr --noheader --parsable2 show association user={member.name} format=user"
        )
        out = controller.run(f"sbatch --uid={member.uid} --gid={member.uid} -t 1 --wrap true")
        if out.rc == 0:
            controller.run(f"scancel {out.stdout.split()[-1]}")
        return assoc.rc == 0 and not assoc.stdout.strip() and out.rc != 0

    # One bound for all three, counted from the removal: each wait gets what is left of it.
    def left() -> float:
        return max(0.0, bound - (time.monotonic() - gone_at))

    assert wait_for(login_refused, timeout=left(), interval=2), "removed user still logs in"
    login_lost_s = time.monotonic() - gone_at
    assert wait_for(submit_refused, timeout=left(), interval=2), "removed user still submits"
    submit_lost_s = time.monotonic() - gone_at
    assert wait_for(lambda: not hub_login(member), timeout=left(), interval=2)
    hub_lost_s = time.monotonic() - gone_at
    # A try that began inside the bound may end a little after it (a hub login takes seconds).
    assert max(login_lost_s, submit_lost_s, hub_lost_s) <= bound + 10
    record_property(
        "directory_user_lifecycle",
        f"submitted {can_submit_s:.1f} s after being added; after removal lost login in "
        f"{login_lost_s:.1f} s, submission in {submit_lost_s:.1f} s and the hub in "
        f"{hub_lost_s:.1f} s (bound {bound} s)",
    )
