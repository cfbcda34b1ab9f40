"""Who may write where on the pipelines services (testbeds/nodeside/project_access.py, run
by PAM for nginx) and the per-job credentials the Buildbot master mints
(testbeds/nodeside/job_tokens.py): run here against a real store folder, as the nodes run
them; the live checks repeat the attacks on a running testbed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

from testbeds.nodeside import project_access
from testbeds.nodeside.job_tokens import JobTokenStore
from testbeds.nodeside.project_access import (
    Refused,
    Settings,
    check_member,
    check_token,
    parse_request,
    target_of,
)
from tests.render import REPO

PUSH_MANIFEST = "PUT /v2/research-pipeline/model/manifests/abc HTTP/1.1"


@pytest.fixture
def store(tmp_path: Path) -> JobTokenStore:
    folder = tmp_path / "jobs"
    folder.mkdir()
    return JobTokenStore(folder)


@pytest.fixture
def settings(store: JobTokenStore) -> Settings:
    return Settings(
        repositories={"research-pipeline": "research", "physics-code": "physics"},
        job_tokens_dir=str(store.folder),
    )


def test_a_minted_credential_is_stored_as_a_hash_readable_by_the_group_only(
    store: JobTokenStore,
) -> None:
    """Readable by nginx's group whatever the master's umask (Buildbot runs with 077)."""
    old_umask = os.umask(0o077)
    try:
        credential = store.mint("research-pipeline", 60)
    finally:
        os.umask(old_umask)
    path = store.folder / credential.user
    assert credential.token not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert store.lookup(credential.user, credential.token) is not None


def test_a_credential_stops_working_when_revoked_or_expired(store: JobTokenStore) -> None:
    revoked = store.mint("research-pipeline", 60)
    store.revoke(revoked.user)
    assert store.lookup(revoked.user, revoked.token) is None
    expired = store.mint("research-pipeline", 60)
    found = store.lookup(expired.user, expired.token)
    assert found is not None
    assert store.lookup(expired.user, expired.token, now=found.expires) is None
    other = store.mint("research-pipeline", 60)
    assert store.lookup(other.user, expired.token) is None
    assert store.revoke_all() == 2
    assert list(store.folder.iterdir()) == []


def test_a_job_user_named_like_a_path_is_never_looked_up(store: JobTokenStore) -> None:
    assert store.lookup("../jobs/ci-job-000000000000", "x") is None
    with pytest.raises(ValueError):
        store.mint("../etc", 60)


@pytest.mark.parametrize(
    ("service", "line", "write", "repository"),
    [
        ("registry", "GET /v2/ HTTP/1.1", False, None),
        (
            "registry",
            "HEAD /v2/research-pipeline/model/manifests/abc HTTP/1.1",
            False,
            "research-pipeline",
        ),
        ("registry", PUSH_MANIFEST, True, "research-pipeline"),
        ("registry", "POST /v2/physics-code/x/blobs/uploads/ HTTP/1.1", True, "physics-code"),
        (
            "registry",
            "DELETE /v2/physics-code/x/manifests/sha256:00 HTTP/1.1",
            True,
            "physics-code",
        ),
        (
            "git",
            "GET /git/research-pipeline.git/info/refs?service=git-receive-pack HTTP/1.1",
            True,
            "research-pipeline",
        ),
        (
            "git",
            "POST /git/research-pipeline.git/git-receive-pack HTTP/1.1",
            True,
            "research-pipeline",
        ),
        (
            "git",
            "POST /git/research-pipeline.git/git-upload-pack HTTP/1.1",
            False,
            "research-pipeline",
        ),
        ("mlflow", "POST /api/2.0/mlflow/runs/create HTTP/1.1", False, None),
    ],
)
def test_requests_are_read_as_writes_into_a_repository_or_reads(
    service: str, line: str, write: bool, repository: str | None
) -> None:
    target = target_of(service, parse_request(line))
    assert (target.write, target.repository if write or repository else None) == (
        write,
        repository,
    )


@pytest.mark.parametrize(
    ("service", "line"),
    [
        ("registry", "PUT /v2/research%2Dpipeline/model/manifests/abc HTTP/1.1"),
        ("registry", "PUT /v2/ HTTP/1.1"),
        ("registry", "PATCH /v2/_catalog HTTP/1.1"),
        ("git", "GET /git/research%2Dpipeline.git/info/refs?service=git-receive-pack HTTP/1.1"),
        ("git", "GET /git/x.git/info/refs?service=git-receive%2Dpack HTTP/1.1x"),
    ],
)
def test_a_write_whose_repository_is_not_plain_is_refused(service: str, line: str) -> None:
    with pytest.raises(Refused):
        target_of(service, parse_request(line))


def test_members_write_only_into_their_projects_repositories(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(project_access, "groups_of", lambda user: {"physics", user})
    physics = "PUT /v2/physics-code/x/manifests/1 HTTP/1.1"
    check_member(settings, "registry", "researcher", parse_request(physics))
    check_member(settings, "registry", "researcher", parse_request("GET /v2/_catalog HTTP/1.1"))
    for line in (PUSH_MANIFEST, "PUT /v2/unowned/x/manifests/1 HTTP/1.1"):
        with pytest.raises(Refused):
            check_member(settings, "registry", "researcher", parse_request(line))
    push = "POST /git/research-pipeline.git/git-receive-pack HTTP/1.1"
    with pytest.raises(Refused, match="not a member of research"):
        check_member(settings, "git", "researcher", parse_request(push))
    with pytest.raises(Refused):
        check_member(settings, "registry", "ci-job-0123456789ab", parse_request(physics))


def test_a_job_credential_writes_only_into_its_own_project_and_only_while_live(
    settings: Settings, store: JobTokenStore
) -> None:
    job = store.mint("research-pipeline", 60)
    check_token(settings, "registry", job.user, job.token, parse_request(PUSH_MANIFEST))
    check_token(settings, "mlflow", job.user, job.token, parse_request("GET /ajax-api/x HTTP/1.1"))
    other = "PUT /v2/physics-code/x/manifests/1 HTTP/1.1"
    with pytest.raises(Refused, match="may not write to physics-code"):
        check_token(settings, "registry", job.user, job.token, parse_request(other))
    with pytest.raises(Refused, match="takes no job credentials"):
        check_token(settings, "git", job.user, job.token, parse_request("GET /git/ HTTP/1.1"))
    with pytest.raises(Refused, match="no live job credential"):
        check_token(settings, "registry", job.user, job.token[::-1], parse_request(PUSH_MANIFEST))
    store.revoke(job.user)
    with pytest.raises(Refused, match="no live job credential"):
        check_token(settings, "registry", job.user, job.token, parse_request(PUSH_MANIFEST))


def run_as_pam(tmp_path: Path, store: JobTokenStore, mode: str, user: str, stdin: bytes) -> int:
    """The program as pam_exec runs it: PAM_USER and REQUEST set, the token on stdin with
    its NUL, the settings in a file (the node's /etc/wp5-project-access.json)."""
    config = tmp_path / "access.json"
    config.write_text(
        json.dumps(
            {"repositories": {"research-pipeline": "research"}, "job_tokens_dir": str(store.folder)}
        )
    )
    code = (
        "import sys; from pathlib import Path; from testbeds.nodeside import project_access as p;"
        f"p.CONFIG = Path({str(config)!r}); sys.exit(p.main(['x', {mode!r}, 'registry']))"
    )
    env = {**os.environ, "PAM_USER": user, "REQUEST": PUSH_MANIFEST, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], input=stdin, env=env).returncode


def test_the_program_answers_pam_with_its_exit_code(tmp_path: Path, store: JobTokenStore) -> None:
    job = store.mint("research-pipeline", 60)
    assert run_as_pam(tmp_path, store, "token", job.user, job.token.encode() + b"\0") == 0
    assert run_as_pam(tmp_path, store, "token", job.user, b"guess\0") == 1
    assert run_as_pam(tmp_path, store, "token", "developer", b"password\0") == 1
    # A write for a user the node does not know: no project membership.
    assert run_as_pam(tmp_path, store, "member", "nobody-such", b"") == 1


def pam_rules(tokens: bool) -> list[list[str]]:
    template = (REPO / "roles/project_access/templates/pam-service.j2").read_text()
    text = jinja2.Template(template).render(
        item={"name": "registry", "tokens": tokens}, ansible_managed="managed"
    )
    return [line.split() for line in text.splitlines() if line and not line.startswith("#")]


def test_the_pam_services_check_a_job_token_alone_and_members_before_passwords() -> None:
    program = "/usr/local/sbin/wp5-project-access"
    assert pam_rules(tokens=True) == [
        [
            "auth",
            "[success=ok",
            "default=1]",
            "pam_succeed_if.so",
            "quiet",
            "user",
            "=~",
            "ci-job-*",
        ],
        [
            "auth",
            "[success=done",
            "default=die]",
            "pam_exec.so",
            "quiet",
            "expose_authtok",
            program,
            "token",
            "registry",
        ],
        ["auth", "requisite", "pam_exec.so", "quiet", program, "member", "registry"],
        ["auth", "required", "pam_sss.so"],
        [
            "account",
            "[success=done",
            "default=ignore]",
            "pam_succeed_if.so",
            "quiet",
            "user",
            "=~",
            "ci-job-*",
        ],
        ["account", "required", "pam_sss.so"],
    ]
    assert pam_rules(tokens=False) == [
        ["auth", "requisite", "pam_exec.so", "quiet", program, "member", "registry"],
        ["auth", "required", "pam_sss.so"],
        ["account", "required", "pam_sss.so"],
    ]
