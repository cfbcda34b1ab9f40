"""Storage tokens as the roles configure them (Ansible renders the templates): an XRootD
endpoint in a testbed with a token issuer requires the issuer's tokens on both protocols
and grants nothing else; Rucio's daemons ask for a token per endpoint with RFC 8707's
resource and the RSE's scopes as the issuer registers them."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.render import REPO, render_role_template

HOSTS = {name: {} for name in ("site1", "site2", "ddm")}
WITH_ISSUER = {"xrootd": ["site1", "site2"], "token_issuer": ["ddm"]}
WITHOUT_ISSUER = {"xrootd": ["site1", "site2"]}


def directives(config: str) -> list[str]:
    return [line.strip() for line in config.splitlines() if line.strip() and line[0] != "#"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    found = {}
    for label, groups, template in (
        ("tokens", WITH_ISSUER, "xrootd.cfg.j2"),
        ("open", WITHOUT_ISSUER, "xrootd.cfg.j2"),
        ("scitokens", WITH_ISSUER, "scitokens.cfg.j2"),
        ("authdb", WITH_ISSUER, "authdb.j2"),
    ):
        tmp = tmp_path_factory.mktemp(label)
        found[label] = render_role_template("xrootd", template, tmp, HOSTS, groups, "site1")
    tmp = tmp_path_factory.mktemp("unit")
    found["unit"] = render_role_template(
        "xrootd",
        "service.conf.j2",
        tmp,
        HOSTS,
        WITH_ISSUER,
        "site1",
        {"__xrootd_hard_nofile": {"stdout": "1024"}},
    )
    return found


def test_with_an_issuer_every_request_needs_its_token(rendered: dict[str, str]) -> None:
    config = directives(rendered["tokens"])
    assert "ofs.authorize 1" in config
    (authlib,) = [line for line in config if line.startswith("ofs.authlib")]
    assert authlib.split()[1:3] == ["++", "libXrdAccSciTokens.so"]
    assert "sec.protocol ztn" in config and "xrootd.tls all" in config
    assert "http.header2cgi Authorization authz" in config
    # root:// copies could not hand the source's token on: not offered with tokens.
    assert not any(line.startswith("ofs.tpc") for line in config)


def test_without_an_issuer_no_token_is_asked_for(rendered: dict[str, str]) -> None:
    config = directives(rendered["open"])
    assert not any(line.startswith(("ofs.authorize", "ofs.authlib", "sec.")) for line in config)
    assert any(line.startswith("ofs.tpc") for line in config)


def test_tokens_must_be_the_issuers_for_this_endpoint(rendered: dict[str, str]) -> None:
    config = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition("=") for line in directives(rendered["scitokens"]))
        if value
    )
    assert config["audience"] == "https://site1:8443"
    assert config["issuer"] == "https://ddm:4593/api/oidc"
    assert config["base_path"] == "/data"
    assert config["map_subject"] == "false"


def test_the_authorisation_database_grants_nothing(rendered: dict[str, str]) -> None:
    assert directives(rendered["authdb"]) == []


def test_the_endpoint_reaches_the_issuer_for_its_keys(rendered: dict[str, str]) -> None:
    (no_proxy,) = [line for line in rendered["unit"].splitlines() if "no_proxy=" in line]
    hosts = no_proxy.split("no_proxy=", 1)[1].strip('"').split(",")
    assert "ddm" in hosts and {"site1", "site2"} <= set(hosts)


@pytest.fixture()
def tokens_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The daemons' token module, loaded alone (its package needs Rucio), with its client
    file in a temporary folder."""
    client_file = tmp_path / "token-client.json"
    monkeypatch.setenv("WP5_RUCIO_TOKEN_CLIENT", str(client_file))
    path = REPO / "roles" / "rucio" / "files" / "wp5_rucio" / "tokens.py"
    spec = importlib.util.spec_from_file_location("wp5_rucio_tokens", path)
    assert spec is not None and spec.loader is not None
    tokens = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, tokens)  # dataclasses look their module up
    spec.loader.exec_module(tokens)
    return tokens, client_file


def test_rucio_scopes_are_written_as_the_issuer_registers_them(tokens_module: Any) -> None:
    tokens, _ = tokens_module
    assert tokens.rse_scopes("storage.modify:/rucio/ storage.read:/rucio/") == (
        "storage.modify:/rucio storage.read:/rucio"
    )
    assert tokens.rse_scopes("storage.read:/ openid") == "storage.read:/ openid"


def test_rucio_asks_for_the_endpoint_as_resource_and_caches(
    tokens_module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens, client_file = tokens_module
    assert tokens.request_token("https://site1:8443", "storage.read:/rucio/") is None
    client_file.write_text(
        json.dumps(
            {
                "token_url": "https://ddm:4593/api/oidc/token",
                "client_id": "rucio-transfers",
                "client_secret": "s3cret-value",
                "ca_file": "/etc/grid-security/ca.pem",
            }
        )
    )
    asked: list[dict[str, Any]] = []

    class Answer:
        def raise_for_status(self) -> None:
            return None

        def json(self) -> dict[str, str]:
            # header.payload.signature, expiring in 2100
            claims = json.dumps({"exp": 4102444800}).encode()
            payload = base64.urlsafe_b64encode(claims).decode().rstrip("=")
            return {"access_token": f"eyJhbGciOiJFUzI1NiJ9.{payload}.c2ln"}

    def post(url: str, **kwargs: Any) -> Answer:
        asked.append({"url": url, **kwargs})
        return Answer()

    monkeypatch.setattr(tokens.requests, "post", post)
    first = tokens.request_token("https://site1:8443", "storage.read:/rucio/")
    again = tokens.request_token("https://site1:8443", "storage.read:/rucio/")
    assert first == again and first is not None
    assert len(asked) == 1, "a cached token was asked for again"
    (request,) = asked
    assert request["url"] == "https://ddm:4593/api/oidc/token"
    assert request["data"] == {
        "grant_type": "client_credentials",
        "scope": "storage.read:/rucio",
        "resource": "https://site1:8443",
    }
    assert request["auth"] == ("rucio-transfers", "s3cret-value")
    assert request["verify"] == "/etc/grid-security/ca.pem"


def test_a_jobs_tokens_read_each_endpoint_from_the_catalogue_once(
    tokens_module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The submitter's cost per file: a job of many files between two endpoints reads each
    endpoint's token needs (a few database queries each) once, and every file still gets
    its two tokens; an endpoint that takes none gets none, a root:// end is left out."""
    tokens, _ = tokens_module
    reads: list[tuple[str, str]] = []

    class FakeRse:
        @staticmethod
        def get_rse_attribute(rse_id: str, key: str) -> Any:
            reads.append(("attribute", rse_id))
            return rse_id != "plain"

        @staticmethod
        def get_rse_protocols(rse_id: str) -> dict[str, Any]:
            reads.append(("protocols", rse_id))
            return {"protocols": [{"scheme": "davs", "hostname": rse_id, "port": 8443}]}

        @staticmethod
        def determine_scope_for_rse(rse_id: str, scopes: list[str]) -> str:
            reads.append(("scope", rse_id))
            return " ".join(f"{s}:/rucio/" for s in scopes)

    monkeypatch.setitem(sys.modules, "rucio", type(sys)("rucio"))
    monkeypatch.setitem(sys.modules, "rucio.core", type(sys)("rucio.core"))
    monkeypatch.setitem(sys.modules, "rucio.core.rse", FakeRse)
    asked: list[tuple[str, str]] = []
    monkeypatch.setattr(
        tokens, "request_token", lambda audience, scope: asked.append((audience, scope)) or "t"
    )
    copies = [
        tokens.Copy(
            f"davs://site1:8443/rucio/f{i}", "site1", f"davs://site2:8443/rucio/f{i}", "site2"
        )
        for i in range(50)
    ]
    found = tokens.copy_tokens(copies)
    assert found == {url: "t" for c in copies for url in (c.src, c.dst)}
    assert sorted(set(reads)) == sorted(reads), f"an endpoint was read more than once: {reads}"
    assert {rse for _, rse in reads} == {"site1", "site2"}
    assert set(asked) == {
        ("https://site1:8443", "storage.read:/rucio/"),
        (
            "https://site2:8443",
            "storage.read:/rucio/ storage.create:/rucio/ storage.modify:/rucio/",
        ),
    }
    mixed = tokens.copy_tokens(
        [
            tokens.Copy("root://site1:1094/rucio/f", "site1", "davs://plain:8443/f", "plain"),
        ]
    )
    assert mixed == {}
