"""The pipelines services' web front ends as the roles render them: every request but
anonymous fetches and MLflow's health probe needs a directory account or a job's
credential (nginx auth_pam with the front end's own PAM service, which reads the request
line to check project ownership), no password file remains, and the services behind nginx
listen on loopback only."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.render import render_role_template

SERVICE = {"service": {}}
GROUPS = {"directory": ["service"], "directory_client": ["service"]}


def render(role: str, template: str, tmp_path: Path) -> str:
    return render_role_template(role, template, tmp_path, SERVICE, GROUPS, on_host="service")


def locations(config: str) -> dict[str, str]:
    """Each location's match and its body (the configs nest no deeper than that)."""
    return dict(re.findall(r"location ([^{]+?) \{(.*?)\n    \}", config, re.S))


def test_git_serves_only_exact_fetches_anonymously_and_internally(tmp_path: Path) -> None:
    config = render("git_server", "nginx-git.conf.j2", tmp_path)
    found = locations(config)
    anonymous = next(body for match, body in found.items() if "git-fetch" in match)
    pushes = next(body for match, body in found.items() if "receive" in match)
    assert "internal;" in anonymous and "auth_pam" not in anonymous
    assert "receive" not in next(m for m in found if "git-fetch" in m)
    assert 'fastcgi_param REMOTE_USER "";' in anonymous
    assert "auth_pam_service_name testbed-git;" in pushes
    assert "auth_pam_set_pam_env on;" in pushes
    assert "auth_basic" not in config
    assert "rewrite ^/git/(.*)$ /git-fetch/$1 last;" in config


def test_registry_is_behind_nginx_with_directory_accounts(tmp_path: Path) -> None:
    site = render("container_registry", "nginx-registry.conf.j2", tmp_path)
    api = locations(site)["/v2/"]
    assert "auth_pam_service_name testbed-registry;" in api
    assert "auth_pam_set_pam_env on;" in api
    assert "proxy_pass http://127.0.0.1:5003;" in api
    registry = yaml.safe_load(render("container_registry", "config.yml.j2", tmp_path))
    assert registry["http"]["addr"] == "127.0.0.1:5003"
    assert "auth" not in registry and "tls" not in registry["http"]


def test_mlflow_lets_only_the_health_probe_in_without_an_account(tmp_path: Path) -> None:
    config = render("mlflow", "nginx-mlflow.conf.j2", tmp_path)
    server_wide = config.split("location", 1)[0]
    assert "auth_pam_service_name testbed-mlflow;" in server_wide
    assert "auth_pam_set_pam_env on;" in server_wide
    assert locations(config)["= /health"].strip().startswith("auth_pam off;")
    assert "auth_basic" not in config


def test_registry_logs_each_accepted_manifest_with_the_digest_it_answered(tmp_path: Path) -> None:
    """The log the CI master pins HPC jobs' images from: manifest puts only, the account
    nginx checked, and the registry's own answer (not anything the client sent)."""
    site = render("container_registry", "nginx-registry.conf.j2", tmp_path)
    assert '"~^PUT /v2/.+/manifests/[^/]+$" 1;' in site
    assert "$upstream_http_docker_content_digest" in site and "$remote_user" in site
    api = locations(site)["/v2/"]
    assert (
        "access_log /var/log/wp5-registry/pushes.log wp5_registry_pushes "
        "if=$wp5_registry_manifest_put;" in api
    )


def test_mlflow_is_told_the_checked_account_and_decides_with_its_permission_app(
    tmp_path: Path,
) -> None:
    """nginx replaces whatever a client sends as X-Wp5-User by the account PAM checked;
    MLflow runs its permission app with everyone reading and the access module deciding
    who a request is, its administrator a name no directory account can have."""
    proxied = locations(render("mlflow", "nginx-mlflow.conf.j2", tmp_path))["/"]
    assert "proxy_set_header X-Wp5-User $remote_user;" in proxied
    ini = render("mlflow", "basic_auth.ini.j2", tmp_path)
    settings = dict(re.findall(r"^(\w+) = (.+)$", ini, re.M))
    assert settings["default_permission"] == "READ"
    assert settings["authorization_function"] == "wp5_mlflow_access:authenticate"
    assert not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", settings["admin_username"])
    unit = render("mlflow", "mlflow.service.j2", tmp_path)
    assert "mlflow server --app-name basic-auth" in unit
