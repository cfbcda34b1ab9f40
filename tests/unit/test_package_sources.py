"""A site's package sources (site.yml `packages:`): validated as data before anything is
made, handed to the common role, and written as apt's and pip's own settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbeds.cli import main
from testbeds.instance import generated_vars
from testbeds.model.plan import resolve
from testbeds.state import StateDir
from testbeds.targets import get_target
from tests.render import render_role_template

PROXIED = """
packages:
  http_proxy: http://proxy.site.example:3128
  no_proxy: [.site.example, 10.0.0.0/8]
  pip_index_url: https://pypi-mirror.site.example/simple
"""


def add_to_local_site(home: Path, text: str) -> None:
    site = home / "inventories" / "local" / "site.yml"
    site.write_text(site.read_text() + text)


def test_the_site_proxy_and_mirror_reach_the_roles(
    scratch_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    add_to_local_site(scratch_home, PROXIED)
    monkeypatch.setenv("TESTBED_STATE_DIR", str(tmp_path / "state"))
    plan = resolve("hpc-access")
    values = generated_vars(plan, StateDir(plan.instance), get_target("local"))
    assert values["common_http_proxy"] == "http://proxy.site.example:3128"
    assert values["common_https_proxy"] == "http://proxy.site.example:3128"  # http's by default
    assert values["common_no_proxy"] == [".site.example", "10.0.0.0/8"]
    assert values["common_pip_index_url"] == "https://pypi-mirror.site.example/simple"


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("  http_proxy: http://user:secret@proxy:3128", "packages.http_proxy"),
        ("  https_proxy: 'proxy:3128; rm -rf /'", "packages.https_proxy"),
        ("  no_proxy: ['a b']", "packages.no_proxy[0]"),
        ("  pip_index_url: ftp://mirror/simple", "packages.pip_index_url"),
    ],
)
def test_a_bad_source_is_refused_naming_the_field(
    scratch_home: Path, capsys: pytest.CaptureFixture[str], line: str, field: str
) -> None:
    add_to_local_site(scratch_home, f"packages:\n{line}\n")
    assert main(["up", "hpc-access", "--instance", "never-made"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "site.yml" in err[0] and field in err[0], err
    assert "secret" not in err[0]


def test_apt_and_pip_settings(tmp_path: Path) -> None:
    values = {
        "common_http_proxy": "http://proxy.site.example:3128",
        "common_https_proxy": "http://proxy.site.example:3128",
        "common_pip_index_url": "https://pypi-mirror.site.example/simple",
    }
    hosts = {"node": {}}
    apt = render_role_template("common", "apt-proxy.conf.j2", tmp_path, hosts, {}, "node", values)
    assert 'Acquire::http::Proxy "http://proxy.site.example:3128";' in apt
    assert 'Acquire::https::Proxy "http://proxy.site.example:3128";' in apt
    pip = render_role_template("common", "pip.conf.j2", tmp_path, hosts, {}, "node", values)
    assert "index-url = https://pypi-mirror.site.example/simple" in pip
    assert "proxy = http://proxy.site.example:3128" in pip
    assert pip.splitlines()[1] == "# Written by wp5-testbeds from the site's packages: settings."
