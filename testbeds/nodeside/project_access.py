"""wp5-project-access token|member SERVICE: who may make this request to git, the registry
or MLflow. Run by pam_exec inside nginx's PAM check (auth_pam, with the request line in
$REQUEST), once per request, before the directory checks the password.

- `token`: the user is a job's credential (ci-job-...), its token on stdin (pam_exec
  expose_authtok). Exit 0 when the token is live and the request stays in the job's
  project; anything else exits 1 and the directory, which knows no such user, refuses.
- `member`: the user is a directory account. Reads pass (the password is checked next);
  a write (a push to git, an upload or delete at the registry) passes only into a
  repository of a project the user is a member of.

Projects own things: each repository of the git server belongs to a project (a directory
group), and its registry namespace is the repository's name. Standard library only."""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import sys
import syslog
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from testbeds.nodeside.job_tokens import USER as JOB_USER
from testbeds.nodeside.job_tokens import JobTokenStore

CONFIG = Path("/etc/wp5-project-access.json")
SERVICES = ("git", "registry", "mlflow")
READS = frozenset({"GET", "HEAD", "OPTIONS"})
REQUEST_LINE = re.compile(r"^(?P<method>[A-Z]{1,16}) (?P<target>/\S*) HTTP/[0-9.]+$")
REGISTRY_NAME = re.compile(r"^/v2/(?P<name>[a-z0-9._/-]+?)/(?:manifests|blobs|tags)/")
GIT_REPOSITORY = re.compile(r"^/git/(?P<repo>[A-Za-z0-9._-]+)\.git/")


class Refused(Exception):
    """Why this request may not be made by this account, in one line."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # as sent, before any '?'
    query: str


@dataclass(frozen=True)
class Target:
    """What a request touches: whether it changes anything, and in which project's
    repository (None: no repository, such as the registry's version check)."""

    write: bool
    repository: str | None


@dataclass(frozen=True)
class Settings:
    repositories: dict[str, str]  # repository -> the project (directory group) that owns it
    job_tokens_dir: str  # "" where no CI master mints job credentials

    @classmethod
    def read(cls, path: Path = CONFIG) -> Settings:
        values = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            repositories={str(k): str(v) for k, v in values["repositories"].items()},
            job_tokens_dir=str(values.get("job_tokens_dir") or ""),
        )


def parse_request(line: str) -> Request:
    match = REQUEST_LINE.match(line)
    if match is None:
        raise Refused("no request line")
    path, _, query = match["target"].partition("?")
    return Request(match["method"], path, query)


def target_of(service: str, request: Request) -> Target:
    """The project a request writes to, or that it only reads. A write whose repository
    cannot be read plainly from the path (encoded, unknown shape) is refused: fail closed."""
    if service == "mlflow":
        # MLflow names experiments in request bodies, which this check does not see: the
        # server's permission app (role mlflow, wp5_mlflow_access) decides who writes where.
        return Target(write=False, repository=None)
    if service == "registry":
        write = request.method not in READS
        if request.path == "/v2/" and not write:
            return Target(write=False, repository=None)
        match = REGISTRY_NAME.match(request.path)
        if match is None or "%" in request.path:
            return _read_only(request, write)
        return Target(write=write, repository=match["name"].split("/", 1)[0])
    if service == "git":
        decoded = urllib.parse.unquote(request.path + "?" + request.query).lower()
        write = "receive-pack" in decoded or request.method not in READS | {"POST"}
        match = GIT_REPOSITORY.match(request.path)
        if match is None or "%" in request.path:
            return _read_only(request, write)
        return Target(write=write, repository=match["repo"])
    raise Refused(f"unknown service {service!r}")


def _read_only(request: Request, write: bool) -> Target:
    """A request whose repository the path does not name plainly: a read of no project's,
    or a write that is refused."""
    if write:
        raise Refused(f"{request.method} {request.path[:80]}: no repository to write to")
    return Target(write=False, repository=None)


def check_member(settings: Settings, service: str, user: str, request: Request) -> None:
    """A directory account: reads pass, writes only into its projects' repositories."""
    if JOB_USER.match(user):
        raise Refused("a job credential is not a directory account")
    target = target_of(service, request)
    if not target.write:
        return
    assert target.repository is not None
    project = settings.repositories.get(target.repository)
    if project is None:
        raise Refused(f"{target.repository}: no project owns it")
    if project not in groups_of(user):
        raise Refused(f"{user} is not a member of {project}, which owns {target.repository}")


def check_token(settings: Settings, service: str, user: str, token: str, request: Request) -> None:
    """A job credential: live, and writing only into the job's own project."""
    if service not in ("registry", "mlflow") or not settings.job_tokens_dir:
        raise Refused(f"{service} takes no job credentials")
    stored = JobTokenStore(Path(settings.job_tokens_dir)).lookup(user, token)
    if stored is None:
        raise Refused(f"{user}: no live job credential with that token")
    target = target_of(service, request)
    if target.write and target.repository != stored.project:
        raise Refused(f"{user}: a job of {stored.project} may not write to {target.repository}")


def groups_of(user: str) -> set[str]:
    """The user's groups as the node resolves them (SSSD: the directory's projects)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return set()
    names = set()
    for gid in os.getgrouplist(user, entry.pw_gid):
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return names


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("token", "member") or argv[2] not in SERVICES:
        print(f"usage: {argv[0]} token|member {'|'.join(SERVICES)}", file=sys.stderr)
        return 2
    mode, service = argv[1], argv[2]
    user = os.environ.get("PAM_USER", "")
    if mode == "token" and not JOB_USER.match(user):
        return 1  # not a job credential: the directory decides
    try:
        request = parse_request(os.environ.get("REQUEST", ""))
        settings = Settings.read(CONFIG)
        if mode == "token":
            token = sys.stdin.buffer.read(4096).split(b"\0", 1)[0].decode("utf-8", "replace")
            check_token(settings, service, user, token, request)
        else:
            check_member(settings, service, user, request)
    except Refused as refused:
        syslog.syslog(syslog.LOG_NOTICE, f"wp5-project-access {service}: refused: {refused}")
        return 1
    except (OSError, ValueError, KeyError) as error:
        syslog.syslog(syslog.LOG_ERR, f"wp5-project-access {service}: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
