"""The pipeline services: running, reachable over TLS from the testbed CA, workers
connected, and nothing accepted from anonymous users that would change anything."""

from __future__ import annotations

import json
import shlex

import pytest

from testbeds.checks.helpers import assert_service_running, wait_for
from testbeds.checks.pipelines.support import http_status

SERVICES = {
    "git_server": ["nginx", "fcgiwrap.socket"],
    "container_registry": ["docker-registry"],
    "mlflow": ["postgresql", "mlflow"],
    "buildbot_master": ["buildbot@pipelines"],
}


@pytest.mark.nodes("service")
@pytest.mark.parametrize("unit", [u for units in SERVICES.values() for u in units])
def test_service_running(host, unit):
    """Each service of the service node is active and enabled."""
    assert_service_running(host, unit)


@pytest.mark.nodes("buildbot_worker")
def test_worker_running(host, node, testbed):
    """The Buildbot worker runs unprivileged: as the buildbot user, or on an HPC gateway as
    the CI account (its jobs become that account's Slurm jobs)."""
    user = "ci" if node in testbed.group("hpc_gateway") else "buildbot"
    assert_service_running(host, f"buildbot-worker@{node}")
    workers = [p for p in host.process.filter(user=user) if "buildbot-worker" in p.args]
    assert workers, f"no buildbot-worker process runs as {user}"
    assert not [p for p in host.process.filter(user="root") if "buildbot-worker" in p.args]


def test_every_worker_is_connected_to_the_master(testbed):
    """Every worker of the testbed holds a connection to the master (from its database)."""
    master = testbed.host(testbed.group("buildbot_master")[0])
    query = (
        "import json, sqlite3; db = sqlite3.connect('file:/var/lib/buildbot/masters/pipelines/"
        "state.sqlite?mode=ro', uri=True); print(json.dumps(sorted(n for (n,) in db.execute("
        "'SELECT w.name FROM connected_workers c JOIN workers w ON w.id = c.workerid'))))"
    )

    def connected():
        out = master.run(f"python3 -c {shlex.quote(query)}")
        return json.loads(out.stdout) if out.rc == 0 else []

    expected = sorted(testbed.group("buildbot_worker") + ["orchestrator"])
    assert wait_for(lambda: connected() == expected, timeout=60), connected()


@pytest.mark.nodes("buildbot_worker")
def test_worker_knows_its_gpus(host, node, testbed):
    """A worker on a node with GPUs tells jobs so, and says when they are emulated."""
    gpus = testbed.traits(node)["gpus"]
    environment = host.run(f"systemctl show -p Environment buildbot-worker@{node}").stdout
    if gpus == 0:
        assert "CI_GPU=none" in environment
    elif host.file("/etc/motd.d/wp5-emulated-gpu").exists:
        assert "CI_GPU=emulated" in environment
    else:
        assert "CI_GPU=hardware" in environment


def test_git_is_served_over_tls_from_the_testbed_ca(service, repo_url):
    """Anyone may list and fetch the repository, verified against the testbed CA."""
    out = service.run(f"git ls-remote {repo_url} refs/heads/main")
    assert out.rc == 0, out.stderr
    assert out.stdout.split()[1] == "refs/heads/main"


def test_anonymous_git_push_is_refused(service, repo_url):
    """A push without credentials is refused by the server and changes no branch."""
    work = "/tmp/anonymous-push"
    out = service.run(
        f"rm -rf {work} && git clone -q {repo_url} {work} && cd {work} && "
        "git -c user.name=anon -c user.email=anon@invalid commit -q --allow-empty -m anon && "
        "GIT_TERMINAL_PROMPT=0 git -c credential.helper= push origin HEAD:refs/heads/anonymous"
    )
    service.run(f"rm -rf {work}")
    assert out.rc != 0, "an anonymous push was accepted"
    refusals = ("401", "Authentication failed", "could not read Username")
    assert any(text in out.stderr for text in refusals), out.stderr
    assert service.run(f"git ls-remote {repo_url} refs/heads/anonymous").stdout.strip() == ""


# Sends a receive-pack request by hand, as no git client would: the service name and the
# endpoint percent-encoded, Basic credentials with a wrong password, and a ref update that
# would create a branch at the current main commit (objects present: an empty pack).
RAW_PUSH = r"""
import base64, hashlib, struct, sys, urllib.error, urllib.request
url, branch, old_main = sys.argv[1], sys.argv[2], sys.argv[3]
auth = "Basic " + base64.b64encode(b"developer:not-the-password").decode()
def status(request):
    request.add_header("Authorization", auth)
    try:
        return urllib.request.urlopen(request, timeout=20).status
    except urllib.error.HTTPError as exc:
        return exc.code
refs = status(urllib.request.Request(url + "/info/refs?service=git-receive%2Dpack"))
command = f"{'0' * 40} {old_main} refs/heads/{branch}\0report-status\n".encode()
pack = b"PACK" + struct.pack(">II", 2, 0)
body = b"%04x" % (len(command) + 4) + command + b"0000" + pack + hashlib.sha1(pack).digest()
request = urllib.request.Request(url + "/git-receive%2Dpack", data=body, method="POST")
request.add_header("Content-Type", "application/x-git-receive-pack-request")
print(refs, status(request))
"""


def test_encoded_push_with_a_wrong_password_is_refused(service, repo_url):
    """A push whose service name is percent-encoded, with Basic credentials that are wrong,
    is refused (401) at both steps and creates no branch."""
    branch = "encoded-bypass"
    main = service.run(f"git ls-remote {repo_url} refs/heads/main").stdout.split()[0]
    out = service.run(f"python3 -c {shlex.quote(RAW_PUSH)} {repo_url} {branch} {main}")
    assert out.rc == 0, out.stderr
    assert out.stdout.split() == ["401", "401"]
    assert service.run(f"git ls-remote {repo_url} refs/heads/{branch}").stdout.strip() == ""


def test_git_push_with_a_wrong_password_is_refused(service, repo_url):
    """A git push with the developer's name and a wrong password is refused and changes no
    branch."""
    work = "/tmp/wrong-password-push"
    wrong = repo_url.replace("https://", "https://developer:not-the-password@")
    out = service.run(
        f"rm -rf {work} && git clone -q {repo_url} {work} && cd {work} && "
        "git -c user.name=x -c user.email=x@invalid commit -q --allow-empty -m wrong && "
        f"GIT_TERMINAL_PROMPT=0 git -c credential.helper= push {wrong} HEAD:refs/heads/wrong-pw"
    )
    service.run(f"rm -rf {work}")
    assert out.rc != 0, "a push with a wrong password was accepted"
    assert "401" in out.stderr or "Authentication failed" in out.stderr, out.stderr
    assert service.run(f"git ls-remote {repo_url} refs/heads/wrong-pw").stdout.strip() == ""


def test_registry_refuses_anonymous_access(registry):
    """The registry's API answers anonymous requests with 401 and a basic-auth challenge."""
    status, _ = http_status(registry("/v2/", anonymous=True))
    assert status == 401
    status, body = http_status(registry("/v2/"))
    assert status == 200, body


def test_anonymous_image_push_is_refused(testbed):
    """An image pushed without credentials (buildah, as root on a worker) is refused."""
    host = testbed.host(testbed.group("buildbot_worker")[0])
    registry = (
        f"{testbed.group('container_registry')[0]}:{testbed.value('container_registry_port')}"
    )
    script = (
        "export REGISTRY_AUTH_FILE=$(mktemp); echo '{}' > $REGISTRY_AUTH_FILE; "
        "b='buildah --storage-driver vfs'; "
        "c=$($b from scratch) && $b commit -q $c localhost/anonymous:check >/dev/null && "
        "$b rm $c >/dev/null; "
        f"$b push localhost/anonymous:check docker://{registry}/anonymous/check:latest; rc=$?; "
        "$b rmi -f localhost/anonymous:check >/dev/null 2>&1; rm -f $REGISTRY_AUTH_FILE; exit $rc"
    )
    out = host.run(f"sh -c {shlex.quote(script)}")
    assert out.rc != 0, "an anonymous image push was accepted"
    assert "authentication required" in out.stderr or "unauthorized" in out.stderr, out.stderr


def test_anonymous_tracking_server_writes_are_refused(testbed, service, mlflow_base):
    """Without an account the tracking server refuses a write (401) and creates nothing;
    plain HTTP is not served at all."""
    name = "anonymous-write-check"
    payload = shlex.quote(json.dumps({"name": name}))
    out = service.run(
        f"curl -sS -o /dev/null -w '%{{http_code}}' --cacert {testbed.value('testbed_ca_file')} "
        "-X POST "
        f"-H 'Content-Type: application/json' -d {payload} "
        f"{mlflow_base}/api/2.0/mlflow/experiments/create"
    )
    assert out.stdout.strip() == "401", out.stdout + out.stderr
    plain = service.run(f"curl -sS --max-time 10 {mlflow_base.replace('https:', 'http:')}/health")
    assert "OK" not in plain.stdout


def test_tracking_server_has_no_anonymous_write(mlflow):
    """The experiment an anonymous client tried to create does not exist."""
    found = mlflow("/api/2.0/mlflow/experiments/search", {"max_results": 1000})
    assert "anonymous-write-check" not in {e["name"] for e in found.get("experiments", [])}


def test_tracking_server_answers(mlflow):
    """The MLflow server is up and reaches its PostgreSQL backend store."""
    assert mlflow("/health", raw=True).strip() == "OK"
    assert "experiments" in mlflow("/api/2.0/mlflow/experiments/search", {"max_results": 1})
