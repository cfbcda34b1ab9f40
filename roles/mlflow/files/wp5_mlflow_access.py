"""Who may do what in MLflow on this testbed: MLflow's `authorization_function` (its
basic-auth app), with MLflow's own permissions deciding each request.

nginx in front has checked the account (a directory account's password, or a running CI
job's own credential, through PAM) and passes its name in X-Wp5-User; MLflow listens on
loopback only, where no user logs in, so nothing else sets that header. Then:

- every account reads every experiment (the app's default_permission, READ);
- an experiment named after a repository (`research-pipeline`, `research-pipeline/...`)
  is its project's: the members of the project that owns the repository and the
  repository's own running jobs manage it (one MLflow role per repository, granted
  MANAGE on each such experiment, assigned to exactly those accounts at each request);
  nobody else writes there, and nobody else may create or rename an experiment to such a
  name;
- any other experiment is its creator's (MLflow's own rule).

Who belongs to a project comes from this node's account database (SSSD: the directory's
project groups), which repository a job credential is for from the live credentials'
folder, which project owns a repository from /etc/wp5-project-access.json (role
project_access). Runs inside MLflow's server, on its node."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Response, request
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.server.auth import store
from mlflow.server.handlers import _get_tracking_store
from werkzeug.datastructures import Authorization

HEADER = "X-Wp5-User"
# A directory account or a job credential (ci-job-...), as nginx's PAM check let it in.
ACCOUNT = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
JOB = re.compile(r"^ci-job-[0-9a-f]{12}$")
CONFIG = Path(os.environ.get("WP5_PROJECT_ACCESS_CONFIG", "/etc/wp5-project-access.json"))
ROLE_PREFIX = "repository-"
WORKSPACE = "default"
OWNERS = "MANAGE"
# Requests that name an experiment: creating it, or renaming it.
NAMING = {"/experiments/create": "name", "/experiments/update": "new_name"}


@dataclass(frozen=True)
class Settings:
    repositories: dict[str, str]  # repository -> the project (directory group) owning it
    job_tokens_dir: Path | None

    @classmethod
    def read(cls) -> Settings:
        values = json.loads(CONFIG.read_text(encoding="utf-8"))
        folder = str(values.get("job_tokens_dir") or "")
        return cls(
            {str(k): str(v) for k, v in values["repositories"].items()},
            Path(folder) if folder else None,
        )

    def repository_of(self, experiment: str) -> str | None:
        """The repository an experiment's name says it belongs to, if any."""
        for repository in self.repositories:
            if experiment == repository or experiment.startswith(repository + "/"):
                return repository
        return None


def authenticate() -> Authorization | Response:
    user = request.headers.get(HEADER, "")
    if not ACCOUNT.fullmatch(user):
        return Response("no account", 401)
    settings = Settings.read()
    repositories = writable_repositories(user, settings)
    refused = naming_refusal(repositories, settings)
    if refused:
        return Response(refused, 403)
    user_id = known_user(user)
    share_project_experiments(user_id, repositories, settings)
    return Authorization("basic", {"username": user, "password": ""})


def writable_repositories(user: str, settings: Settings) -> set[str]:
    """A job's own repository; or the repositories of the projects the account is in."""
    if JOB.fullmatch(user):
        return {job_repository(user, settings)} - {""}
    groups = groups_of(user)
    return {repo for repo, project in settings.repositories.items() if project in groups}


def job_repository(user: str, settings: Settings) -> str:
    """The repository a live job credential is for ('' if none: nginx let only a live one
    in, but it may have ended since)."""
    if settings.job_tokens_dir is None:
        return ""
    try:
        fd = os.open(settings.job_tokens_dir / user, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, encoding="utf-8") as stored:
            return str(json.load(stored)["project"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def groups_of(user: str) -> set[str]:
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


def naming_refusal(repositories: set[str], settings: Settings) -> str:
    """Why this request may not give an experiment the name it asks for ('' if it may)."""
    if request.method != "POST":
        return ""
    field = next((f for suffix, f in NAMING.items() if request.path.endswith(suffix)), None)
    if field is None:
        return ""
    body = request.get_json(silent=True)
    name = body.get(field) if isinstance(body, dict) else None
    owner = settings.repository_of(name) if isinstance(name, str) else None
    if owner is not None and owner not in repositories:
        return f"experiment {name!r} belongs to the project of {owner}, which is not yours"
    return ""


def known_user(user: str) -> int:
    """MLflow's record of the account (made on first sight; its password is never used:
    nginx checked the account)."""
    if not store.has_user(user):
        with contextlib.suppress(MlflowException):  # another worker made it first
            store.create_user(user, secrets.token_urlsafe(32))
    return int(store.get_user(user).id)


def share_project_experiments(user_id: int, repositories: set[str], settings: Settings) -> None:
    """The account holds exactly the roles of `repositories`; each role manages every
    experiment its repository's name covers."""
    held = {role.name: role for role in store.list_user_roles(user_id)}
    for name, role in held.items():
        if name.startswith(ROLE_PREFIX) and name.removeprefix(ROLE_PREFIX) not in repositories:
            store.unassign_role_from_user(user_id, role.id)
    for repository in sorted(repositories):
        role = repository_role(repository)
        granted = {p.resource_pattern for p in store.list_role_permissions(role.id)}
        for experiment_id in experiments_of(repository, settings):
            if experiment_id not in granted:
                store.add_role_permission(role.id, "experiment", experiment_id, OWNERS)
        if ROLE_PREFIX + repository not in held:
            store.assign_role_to_user(user_id, role.id)


def repository_role(repository: str) -> Any:
    name = ROLE_PREFIX + repository
    try:
        return store.get_role_by_name(WORKSPACE, name)
    except MlflowException:
        try:
            return store.create_role(name, WORKSPACE, f"manages the experiments of {repository}")
        except MlflowException:
            return store.get_role_by_name(WORKSPACE, name)  # another worker made it first


def experiments_of(repository: str, settings: Settings) -> list[str]:
    """Ids of the experiments whose names say they are `repository`'s."""
    tracking = _get_tracking_store()
    found = []
    for filter_string in (f"name = '{repository}'", f"name LIKE '{repository}/%'"):
        for experiment in tracking.search_experiments(
            view_type=ViewType.ALL, max_results=1000, filter_string=filter_string
        ):
            if settings.repository_of(experiment.name) == repository:
                found.append(str(experiment.experiment_id))
    return found
