"""One directory of accounts for the pipelines services: git push, the registry and MLflow
let in directory accounts by their password (checked through PAM and SSSD on every
request), a user added after `up` gets in at once and a removed one is out within the
stated bound; no service keeps a password file of its own."""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator
from typing import Any

import pytest

from testbeds.checks.directory_accounts import NewUser
from testbeds.checks.helpers import wait_for, write_private_file
from testbeds.checks.pipelines.support import REPOSITORY, http_status

# Password files the services kept before the directory held their accounts.
OLD_PASSWORD_FILES = (
    "/etc/nginx/wp5-git.htpasswd",
    "/etc/nginx/wp5-mlflow.htpasswd",
    "/etc/docker/registry/htpasswd",
)


class ServiceAccess:
    """What one directory user can do at the git server, the registry and MLflow, tried
    from the service node with the user's password in root-only files there (git's
    credential store, curl's config on stdin): never on a command line."""

    def __init__(self, testbed: Any, service: Any, repo_url: str) -> None:
        self.service = service
        self.repo_url = repo_url
        self.ca = testbed.value("testbed_ca_file")
        registry = testbed.group("container_registry")[0]
        self.registry = f"https://{registry}:{testbed.value('container_registry_port')}/v2/"
        mlflow = testbed.group("mlflow")[0]
        self.mlflow = (
            f"https://{mlflow}:{testbed.value('mlflow_port')}"
            "/api/2.0/mlflow/experiments/search?max_results=1"
        )
        self.folder = service.check_output("mktemp -d /root/pipelines-account.XXXXXX")
        self.tags: list[str] = []

    def enrol(self, user: NewUser, password: str) -> None:
        host = self.repo_url.split("/")[2]
        write_private_file(
            self.service,
            f"{self.folder}/{user.name}.git",
            f"https://{user.name}:{password}@{host}\n",
        )
        write_private_file(
            self.service, f"{self.folder}/{user.name}.curl", f'user = "{user.name}:{password}"\n'
        )

    def push(self, user: NewUser) -> Any:
        """Push a tag (no pipeline runs for tags) to the repository as the user."""
        tag = f"account-check-{user.name}-{len(self.tags)}"
        self.tags.append(tag)
        work = f"{self.folder}/work"
        store = shlex.quote(f"store --file={self.folder}/{user.name}.git")
        return self.service.run(
            f"rm -rf {work} && git clone -q {self.repo_url} {work} && cd {work} && "
            f"GIT_TERMINAL_PROMPT=0 git -c credential.helper= -c credential.helper={store} "
            f"push -q origin HEAD:refs/tags/{tag}"
        )

    def status(self, user: NewUser, url: str) -> int:
        out = self.service.run(
            f"curl -sS -K - --cacert {self.ca} -o /dev/null -w '\\n%{{http_code}}' "
            f"{shlex.quote(url)} < {self.folder}/{user.name}.curl"
        )
        return http_status(out)[0]

    def close(self, git_root: str) -> None:
        for tag in self.tags:
            # As the repositories' owner: git refuses a repository another user owns.
            self.service.run(
                f"runuser -u www-data -- git -C {git_root}/{REPOSITORY}.git tag -d {tag}"
            )
        self.service.run(f"rm -rf {self.folder}")


@pytest.fixture
def access(testbed: Any, service: Any, repo_url: str) -> Iterator[ServiceAccess]:
    made = ServiceAccess(testbed, service, repo_url)
    yield made
    made.close(str(testbed.value("git_server_root")))


def test_user_added_after_up_pushes_pulls_and_logs_then_loses_all(
    testbed, newcomers, access, record_property
):
    """A user added to the directory after `up` (not in the definition) pushes to git,
    reaches the registry and MLflow with the directory password at once; once removed, the
    user is refused by all three within the cache period (the bound)."""
    bound = int(testbed.value("directory_client_cache_seconds")) + 10
    user = newcomers.add(["research"])
    access.enrol(user, newcomers.password(user))
    started = time.monotonic()

    pushed = access.push(user)
    assert pushed.rc == 0, pushed.stderr
    assert access.status(user, access.registry) == 200
    assert access.status(user, access.mlflow) == 200
    in_s = time.monotonic() - started

    removed = newcomers.controller.run(f"testbed-directory remove-user {user.name}")
    assert removed.rc == 0, removed.stderr
    gone = time.monotonic()

    # One bound for all three, counted from the removal: each wait gets what is left of it.
    def left() -> float:
        return max(0.0, bound - (time.monotonic() - gone))

    assert wait_for(lambda: access.push(user).rc != 0, timeout=left(), interval=2)
    push_lost_s = time.monotonic() - gone
    assert wait_for(lambda: access.status(user, access.registry) == 401, timeout=left())
    assert wait_for(lambda: access.status(user, access.mlflow) == 401, timeout=left())
    all_lost_s = time.monotonic() - gone
    record_property(
        "pipelines_account_lifecycle",
        f"pushed, pulled and logged {in_s:.1f} s after being added; after removal lost push "
        f"in {push_lost_s:.1f} s and all three in {all_lost_s:.1f} s (bound {bound} s)",
    )


def test_fetch_only_location_cannot_be_asked_for_directly(service, repo_url):
    """The unauthenticated location that serves anonymous fetches is internal: a request
    naming it gets 404, receive-pack included."""
    base = repo_url.replace("/git/", "/git-fetch/")
    for path in ("/info/refs?service=git-receive-pack", "/git-receive-pack", "/HEAD"):
        out = service.run(
            f"curl -sS -o /dev/null -w '\\n%{{http_code}}' {shlex.quote(base + path)}"
        )
        assert http_status(out)[0] == 404, (path, out.stdout, out.stderr)


# Where services keep their settings and data on the service node (the checks' own files
# under /root are not searched).
SERVICE_FOLDERS = "/etc /var/lib /srv /opt /usr/local"


def test_services_keep_no_password_files(testbed, service):
    """No service keeps a password file of its own: the directory holds every account. No
    file in the services' folders holds any definition account's password, and no nginx
    site names a password file."""
    left = [path for path in OLD_PASSWORD_FILES if service.file(path).exists]
    assert left == []
    sites = service.run("grep -rl auth_basic_user_file /etc/nginx/ || true").stdout.split()
    assert sites == []
    files = [
        testbed.secrets_dir / f"user-{account['name']}-password"
        for account in testbed.plan["vars"]["users_accounts"]
    ]
    passwords = [file.read_text().strip() for file in files if file.is_file()]
    assert passwords and all(len(p) >= 12 for p in passwords)
    patterns = service.check_output("mktemp /root/password-search.XXXXXX")
    write_private_file(service, patterns, "\n".join(passwords) + "\n")
    found = service.run(
        f"grep -rlsF -f {patterns} --exclude-dir=proc {SERVICE_FOLDERS}; rm -f {patterns}"
    )
    assert found.stdout.split() == [], "files holding an account's password"
