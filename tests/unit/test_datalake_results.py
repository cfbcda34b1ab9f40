"""An HPC job's results into the datalake (testbeds/nodeside/datalake_results.py) and the
tokens the master mints for them (datalake_tokens.py), against a loopback HTTPS server
that stands for the storage endpoint, Rucio and the token issuer and records what it was
sent (the real ones answer in the composed testbed's scenario check)."""

from __future__ import annotations

import dataclasses
import json
import os
import ssl
import subprocess
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from testbeds.nodeside import hpc_job
from testbeds.nodeside.datalake_results import (
    MAX_RESULTS,
    Datalake,
    DatalakeError,
    publish,
    results_in,
)
from testbeds.nodeside.datalake_tokens import DatalakeClient, Issuer, JobTokens


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Loopback:
    """A loopback HTTPS server: what it was sent, and answers by path."""

    url: str
    ca_file: str
    received: list[Received] = field(default_factory=list)
    answers: dict[str, tuple[int, bytes]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", key, "-out", cert],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def server(certificate: tuple[str, str]) -> Iterator[Loopback]:
    cert, key = certificate
    loopback = Loopback(url="", ca_file=cert)

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            loopback.received.append(
                Received(self.command, self.path, dict(self.headers), self.rfile.read(length))
            )
            status, body = loopback.answers.get(self.path, (201, b""))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_PUT = do_POST = answer

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    loopback.url = f"https://localhost:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield loopback
    httpd.shutdown()
    httpd.server_close()


def datalake(url: str) -> Datalake:
    return Datalake(
        storage_url=url,
        export_path="/data",
        area="/users/pipeline-{project}",
        rse="HPC_USERDISK",
        rucio_url=url + "/rucio",
        account="pipeline-{project}",
        scope="project.{project}",
        copy_to="SITE1",
    )


def test_results_are_the_folders_regular_files_with_size_and_adler32(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_bytes(b"second\n")
    (tmp_path / "a.csv").write_bytes(b"x" * 70000)
    found = results_in(tmp_path)
    assert [(r.name, r.bytes, r.adler32) for r in found] == [
        ("a.csv", 70000, f"{zlib.adler32(b'x' * 70000):08x}"),
        ("b.txt", 7, f"{zlib.adler32(b'second' + bytes([10])):08x}"),
    ]
    # Written as Rucio does: eight hex digits, leading zeros kept.
    (tmp_path / "c").write_bytes(b"")
    assert results_in(tmp_path)[-1].adler32 == "00000001"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: os.symlink("/etc/passwd", d / "link"), "result link: not a regular file"),
        (lambda d: (d / "sub").mkdir(), "result sub: not a regular file"),
        (lambda d: (d / ".hidden").write_text("x"), "not a plain file name"),
        (lambda d: (d / "a b").write_text("x"), "not a plain file name"),
        (
            lambda d: [(d / f"r{i}").write_text("x") for i in range(MAX_RESULTS + 1)],
            f"at most {MAX_RESULTS} files",
        ),
    ],
)
def test_anything_but_plain_files_in_the_results_is_refused(
    tmp_path: Path, make: Callable[[Path], object], message: str
) -> None:
    make(tmp_path)
    with pytest.raises(DatalakeError, match=message):
        results_in(tmp_path)


def test_the_project_fills_in_area_account_and_scope_within_rucios_limits() -> None:
    made = datalake("https://hpc:8443").for_project("research")
    assert (made.area, made.account, made.scope) == (
        "/users/pipeline-research",
        "pipeline-research",
        "project.research",
    )
    assert made.pfn("run-1", "t.txt") == "davs://hpc:8443/data/users/pipeline-research/run-1/t.txt"
    with pytest.raises(DatalakeError, match="longer than Rucio allows"):
        datalake("https://hpc:8443").for_project("a-very-long-project-name")
    for project in ("", "../x", "Research", "a/b"):
        with pytest.raises(DatalakeError, match="is not a repository name"):
            datalake("https://hpc:8443").for_project(project)


def test_publish_writes_registers_and_asks_for_a_copy_each_with_its_token(
    tmp_path: Path, server: Loopback
) -> None:
    (tmp_path / "table.txt").write_bytes(b"path 12 md5\n")
    lake = datalake(server.url).for_project("research")
    server.answers["/rucio/rules/"] = (201, json.dumps(["ab" * 16]).encode())
    tokens = {server.url: "storage-token", server.url + "/rucio": "rucio-token"}
    lines = publish(lake, tokens, server.ca_file, "analyse-1", tmp_path)

    put, replicas, rules = server.received
    assert (put.method, put.path, put.body) == (
        "PUT",
        "/data/users/pipeline-research/analyse-1/table.txt",
        b"path 12 md5\n",
    )
    assert put.headers["Authorization"] == "Bearer storage-token"
    assert replicas.path == "/rucio/replicas" and rules.path == "/rucio/rules/"
    for request in (replicas, rules):
        assert request.headers["X-Rucio-Auth-Token"] == "rucio-token"
        assert "Authorization" not in request.headers
    did = {"scope": "project.research", "name": "analyse-1.table.txt"}
    adler32 = f"{zlib.adler32(b'path 12 md5' + bytes([10])):08x}"
    assert json.loads(replicas.body) == {
        "rse": "HPC_USERDISK",
        "files": [
            {
                **did,
                "bytes": 12,
                "adler32": adler32,
                "pfn": f"davs://{server.url.removeprefix('https://')}"
                "/data/users/pipeline-research/analyse-1/table.txt",
            }
        ],
    }
    assert json.loads(rules.body) == {
        "dids": [did],
        "copies": 1,
        "rse_expression": "SITE1",
        "account": "pipeline-research",
    }
    assert lines == [
        f"datalake: project.research:analyse-1.table.txt 12 bytes adler32 {adler32}"
        " at HPC_USERDISK",
        f"datalake: rule {'ab' * 16} copies them to SITE1",
    ]


def test_a_refused_request_stops_the_publishing_saying_where(
    tmp_path: Path, server: Loopback
) -> None:
    (tmp_path / "table.txt").write_text("x")
    server.answers["/rucio/replicas"] = (401, b'{"ExceptionMessage": "no such identity"}')
    lake = datalake(server.url).for_project("research")
    tokens = {server.url: "s", server.url + "/rucio": "r"}
    with pytest.raises(DatalakeError, match="registering the results at HPC_USERDISK: HTTP 401"):
        publish(lake, tokens, server.ca_file, "run", tmp_path)
    assert [r.path for r in server.received][-1] == "/rucio/replicas"
    # Without a token for each audience nothing is sent.
    server.received.clear()
    with pytest.raises(DatalakeError, match="no token for"):
        publish(lake, {server.url: "s"}, server.ca_file, "run", tmp_path)
    assert server.received == []


def test_no_results_no_requests(tmp_path: Path, server: Loopback) -> None:
    lake = datalake(server.url).for_project("research")
    assert publish(lake, {}, server.ca_file, "run", tmp_path) == [
        "datalake: the job left no results"
    ]
    assert server.received == []


def test_the_master_asks_the_issuer_for_one_token_per_audience_by_client_credentials(
    tmp_path: Path, server: Loopback
) -> None:
    secret = tmp_path / "issuer-pipeline-research"
    secret.write_text("s3cret\n")
    client = DatalakeClient(
        "research",
        "pipeline-research",
        secret,
        ("openid", "storage.create:/users/p"),
        ("https://a", "b"),
    )
    server.answers["/token"] = (200, json.dumps({"access_token": "T"}).encode())
    assert Issuer(server.url, server.ca_file).tokens(client) == {"https://a": "T", "b": "T"}
    first = server.received[0]
    assert first.headers["Authorization"] == "Basic cGlwZWxpbmUtcmVzZWFyY2g6czNjcmV0"
    assert parse_qs(first.body.decode()) == {
        "grant_type": ["client_credentials"],
        "scope": ["openid storage.create:/users/p"],
        "resource": ["https://a"],
    }
    server.answers["/token"] = (200, b'{"error": "invalid_scope"}')
    with pytest.raises(ValueError, match="no token for https://a"):
        Issuer(server.url, server.ca_file).tokens(client)


def test_the_gateway_reads_the_masters_record_of_tokens_or_why_there_are_none() -> None:
    made = JobTokens("research", {"https://a": "T"})
    assert JobTokens.from_json(made.to_json()) == made
    refused = JobTokens("research", error="the issuer gave pipeline-research no tokens: refused")
    assert JobTokens.from_json(refused.to_json()).error.endswith("refused")
    for text, message in (
        ("not json", "is not JSON"),
        ('["T"]', "is not the master's record"),
        ('{"project": "r", "tokens": {"https://a": 1}, "error": ""}', "is not the master's record"),
        ('{"project": "r", "tokens": {}}', "is not the master's record"),
    ):
        with pytest.raises(ValueError, match=message):
            JobTokens.from_json(text)


def test_a_green_jobs_results_stay_put_where_there_is_no_datalake_and_fail_on_bad_tokens(
    tmp_path: Path, server: Loopback, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.txt").write_text("x")
    without = hpc_job.Settings("cpu", "gpu", "gpu:1", "1:00", ".j", ("/home",), server.ca_file)
    assert hpc_job.put_into_datalake(without, "garbage", tmp_path) == 0
    with_lake = dataclasses.replace(without, datalake=datalake(server.url))
    assert hpc_job.put_into_datalake(with_lake, "", tmp_path) == 0
    assert "this project has no client there; results stay in" in capsys.readouterr().out
    refused = JobTokens("research", error="the issuer gave pipeline-research no tokens: 401")
    assert hpc_job.put_into_datalake(with_lake, refused.to_json(), tmp_path) == 1
    assert "did not go into the datalake: the issuer gave" in capsys.readouterr().out
    assert server.received == []
    tokens = JobTokens("research", {server.url: "s", server.url + "/rucio": "r"})
    server.answers["/rucio/rules/"] = (201, b"not the rules' ids")
    assert hpc_job.put_into_datalake(with_lake, tokens.to_json(), tmp_path) == 1
    assert 'Rucio answered the rule with b"not the rules\' ids"' in capsys.readouterr().out
    server.received.clear()
    server.answers["/rucio/rules/"] = (201, json.dumps(["cd" * 16]).encode())
    assert hpc_job.put_into_datalake(with_lake, tokens.to_json(), tmp_path) == 0
    printed = capsys.readouterr().out
    assert f"datalake: project.research:{tmp_path.name}.table.txt 1 bytes" in printed
    assert server.received[0].path == f"/data/users/pipeline-research/{tmp_path.name}/table.txt"
