"""The pipeline services: running, reachable over TLS from the testbed CA, workers
connected, and nothing accepted from anonymous users that would change anything."""

from __future__ import annotations

import json
import shlex

import pytest

from testbeds.checks.helpers import assert_service_running, wait_for
from testbeds.checks.pipelines.support import http_status, plan_var

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
def test_worker_running(host, node):
    """The Buildbot worker runs as the unprivileged buildbot user."""
    assert_service_running(host, f"buildbot-worker@{node}")
    workers = [p for p in host.process.filter(user="buildbot") if "buildbot-worker" in p.args]
    assert workers, "no buildbot-worker process runs as the buildbot user"


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
        f"{testbed.group('container_registry')[0]}:"
        f"{plan_var(testbed, 'container_registry_port', 5000)}"
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


def test_tracking_server_answers(mlflow):
    """The MLflow server is up and reaches its PostgreSQL backend store."""
    assert mlflow("/health", raw=True).strip() == "OK"
    assert "experiments" in mlflow("/api/2.0/mlflow/experiments/search", {"max_results": 1})
