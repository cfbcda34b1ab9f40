"""The hub's configuration, rendered by Ansible: with a token issuer in the testbed users
log in there (OAuth, the client secret read from a root-only file, never written into the
configuration); without one, the hub's own password form (PAM)."""

from __future__ import annotations

from pathlib import Path

from tests.render import render_role_template

HOSTS = {"controller": {}, "login": {}}


def render(tmp_path: Path, groups: dict[str, list[str]]) -> str:
    # the venv comes from the role jupyterhub depends on
    venv = {"jupyterhub_singleuser_venv": "/opt/jupyterhub"}
    return render_role_template(
        "jupyterhub", "jupyterhub_config.py.j2", tmp_path, HOSTS, groups, "login", venv
    )


def test_with_an_issuer_the_hub_logs_users_in_there(tmp_path: Path) -> None:
    config = render(tmp_path, {"jupyterhub": ["login"], "token_issuer": ["controller"]})
    compile(config, "jupyterhub_config.py", "exec")  # valid Python
    assert '"oauthenticator.generic.LocalGenericOAuthenticator"' in config
    assert "PAMAuthenticator" not in config
    assert 'authorize_url = "https://controller:4593/api/oidc/auth"' in config
    assert 'oauth_callback_url = "https://login:8000/hub/oauth_callback"' in config
    assert 'open("/etc/jupyterhub/oauth-client-secret")' in config
    assert "c.GenericOAuthenticator.basic_auth = True" in config
    assert 'username_claim = "preferred_username"' in config


def test_the_hub_and_its_notebooks_speak_tls_with_client_certificates(tmp_path: Path) -> None:
    config = render(tmp_path, {"jupyterhub": ["login"], "jupyterhub_singleuser": ["c1", "c2"]})
    compile(config, "jupyterhub_config.py", "exec")
    assert "c.JupyterHub.internal_ssl = True" in config
    assert 'hub_bind_url = "https://0.0.0.0:8081"' in config
    assert 'hub_connect_url = "https://login:8081"' in config
    assert 'trusted_alt_names = ["DNS:login"]' in config
    assert 'ssl_alt_names = ["DNS:c1", "DNS:c2", "DNS:login"]' in config
    assert "c.JupyterHub.spawner_class = SlurmSpawnerWithTLSFiles" in config
    assert '"/usr/local/libexec/wp5-notebook-certs"' in config


def test_without_an_issuer_the_hub_checks_passwords_itself(tmp_path: Path) -> None:
    config = render(tmp_path, {"jupyterhub": ["login"]})
    compile(config, "jupyterhub_config.py", "exec")
    assert '"jupyterhub.auth.PAMAuthenticator"' in config
    assert "OAuthenticator" not in config and "oauth-client-secret" not in config
