"""Replication throughput of the data-movement testbed: a Rucio rule against a plain
third-party-copy loop over the same files between the same endpoints.

    python -m tests.benchmark.replication [--instance bench-dm] [--small 1000x100000]
                                          [--large 4x500000000] [--keep] [--write FILE]

For each dataset (COUNTxBYTES) it uploads the files to SITE1 with Rucio, then times

- rucio: a rule for one copy on SITE2, from its creation until the finisher set it OK, as
  Rucio's database records both (the conveyor's submitter, the gfal2 transfer tool's
  third-party copies and the poller and finisher all inside the figure; the time the
  client saw, asking every second, is printed beside it);
- raw: HTTP third-party copies (curl's COPY, as Rucio's transfers make them, each with a
  storage token for either end and the testbed's CA alone trusted) from SITE1's replicas
  to SITE2, one file after another, from the client node: what the endpoints do without
  Rucio;

and prints MB/s and files/s for both and their ratio, and where a rule's time per file
goes: each transfer's wait for the submitter (created to submitted), the transfer tool's
start (submitted to the copy's start), the copy itself, the poller and finisher (copied to
archived), as medians over the rule's transfers from Rucio's request history, and the
storage tokens the submitter asked the issuer for. The testbed (instance `--instance`)
is brought up if it is not up, and taken down at the end unless `--keep`. It takes long
with the default sizes (5 GB written twice); not part of the test suite."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbeds import paths
from testbeds.checks.conftest import Testbed
from testbeds.checks.storage_tokens import READ_SCOPES, WRITE_SCOPES, StorageTokens
from testbeds.state import StateDir
from testbeds.targets.local import podman
from tests.benchmark.provenance import provenance

PROBE = paths.CHECKS_DIR / "data_management" / "rucio_probe.py"
RULE_TIMEOUT_S = 3600


@dataclass(frozen=True)
class Figure:
    seconds: float
    files: int
    bytes: int

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds


def testbed(*args: str) -> None:
    proc = subprocess.run(["testbed", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"testbed {' '.join(args)} failed:\n{proc.stderr[-3000:]}")


def on_client(instance: str, tokens: StorageTokens) -> Callable[..., Any]:
    client = f"{instance}-client"
    podman.run("cp", str(PROBE), f"{client}:/tmp/rucio_probe.py")

    def rucio(*args: object, token_for: str = "") -> Any:
        token = []
        if token_for:
            token = [f"STORAGE_TOKEN_FILE={tokens.get(token_for, WRITE_SCOPES).token}"]
        proc = podman.exec_(
            client,
            "env",
            *token,
            "/opt/rucio-clients/venv/bin/python",
            "/tmp/rucio_probe.py",
            *map(str, args),
            timeout=RULE_TIMEOUT_S,
        )
        if proc.returncode != 0:
            sys.exit(f"rucio {args[0]} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    return rucio


@dataclass(frozen=True)
class Split:
    """Where a rule's time went, per transfer (medians, seconds), and the storage tokens
    the submitter asked for meanwhile."""

    queued: float
    tool_start: float
    copy: float
    poll_finish: float
    tokens: int
    tokens_s: float


def rule_figure(
    instance: str, rucio: Callable[..., Any], did: str, files: int, size: int
) -> tuple[Figure, float, str]:
    """The rule's time from Rucio's own record (created until the finisher set it OK), the
    time the client saw (it asks every second, each question a process of its own), and
    the rule's id."""
    start = time.monotonic()
    rule = str(rucio("rule-add", did, 1, "SITE2")["rule"])
    while rucio("rule", rule)["state"] != "OK":
        if time.monotonic() - start > RULE_TIMEOUT_S:
            sys.exit(f"rule {rule} not OK after {RULE_TIMEOUT_S} s: {rucio('rule', rule)}")
        time.sleep(1)
    seen = time.monotonic() - start
    query = "select extract(epoch from updated_at - created_at) from rules where id = '{rule}'"
    recorded = float(rucio_query(instance, rule, query)[0][0])
    return Figure(recorded, files, size), seen, rule


def rucio_query(instance: str, rule: str, query: str) -> list[list[str]]:
    """Rows of a query about one rule in Rucio's database, on the Rucio node."""
    if not re.fullmatch(r"[0-9a-f]{32}", rule):
        sys.exit(f"rule id {rule!r} is not 32 hex digits")
    proc = podman.exec_(f"{instance}-ddm", "runuser", "-u", "postgres", "--", "psql", "-d",
                        "rucio", "-AtF,", "-c", query.format(rule=rule))  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"Rucio's database on rule {rule}: {proc.stderr[-1000:]}")
    return [line.split(",") for line in proc.stdout.split()]


def rule_split(instance: str, rule: str, since: float) -> Split:
    """The rule's transfers from Rucio's request history (on the Rucio node's database),
    and the submitter's log of the tokens it asked for since `since` (epoch seconds)."""
    rows = [
        list(map(float, row))
        for row in rucio_query(
            instance,
            rule,
            "select extract(epoch from submitted_at - created_at),"
            " extract(epoch from started_at - submitted_at),"
            " extract(epoch from transferred_at - started_at),"
            " extract(epoch from updated_at - transferred_at)"
            " from requests_history where rule_id = '{rule}' and state = 'D'",
        )
    ]
    if not rows:
        sys.exit(f"rule {rule}: no done transfer in Rucio's request history")
    columns = [statistics.median(column) for column in zip(*rows, strict=True)]
    log = podman.exec_(f"{instance}-ddm", "journalctl", "-u", "rucio-conveyor-submitter",
                       "-o", "cat", "--since", f"@{int(since)}")  # fmt: skip
    asked = [float(m[1]) for m in re.finditer(r"storage token for .* in ([0-9.]+) s", log.stdout)]
    queued, tool_start, copy, poll_finish = columns
    return Split(queued, tool_start, copy, poll_finish, tokens=len(asked), tokens_s=sum(asked))


@dataclass(frozen=True)
class Row:
    label: str
    ruled: Figure
    seen: float
    raw: Figure
    split: Split


def https_url(pfn: str, port: int) -> str:
    """The davs:// endpoint's URL of a replica Rucio names by its root:// PFN."""
    head, _, path = pfn.removeprefix("root://").partition("/")
    return f"https://{head.split(':')[0]}:{port}/{path.lstrip('/')}"


def raw_figure(
    instance: str, tokens: StorageTokens, sources: list[str], size: int, port: int, ca_file: str
) -> Figure:
    """One shell on the client copies every file, so only the copies are timed (into the
    export's top folder: an HTTP COPY makes no parent folders). curl trusts the testbed's CA
    alone, as Rucio's transfers do: reading the system's bundle would cost each copy about
    0.1 s of CPU on the client, which is not the wire's."""
    target = f"https://site2:{port}/data/bench-raw-{uuid.uuid4().hex[:8]}"
    source_token = tokens.get("site1", READ_SCOPES).source_header
    target_token = tokens.get("site2", WRITE_SCOPES).header
    copies = "\n".join(
        f"curl -sS --fail-with-body --cacert {shlex.quote(ca_file)} -X COPY "
        f"-H @{target_token} -H @{source_token} "
        f"-H {shlex.quote('Source: ' + src)} {target}-{src.rsplit('/', 1)[1]} "
        "| grep -q '^success' || exit 1"
        for src in sources
    )
    script = f"start=$(date +%s.%N)\n{copies}\nend=$(date +%s.%N)\necho $start $end\n"
    # On standard input: a thousand copies are more than a command line holds.
    proc = podman.run(
        "exec", "-i", f"{instance}-client", "sh", "-s",
        check=False, input_bytes=script.encode(), timeout=RULE_TIMEOUT_S,
    )  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"raw copy failed:\n{proc.stdout[-1000:]}{proc.stderr[-3000:]}")
    start, end = map(float, proc.stdout.split()[-2:])
    return Figure(end - start, len(sources), size)


def settle(instance: str) -> None:
    """Write what the last step left in memory to disk before the next is timed: the kernel
    writing gigabytes back while a copy runs would be timed with whichever copy came next."""
    proc = podman.exec_(f"{instance}-site1", "sync", timeout=RULE_TIMEOUT_S)
    if proc.returncode != 0:
        sys.exit(f"sync on {instance}-site1: {proc.stderr[-1000:]}")


def dataset(spec: str) -> tuple[int, int]:
    count, size = spec.lower().split("x")
    return int(count), int(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--instance", default="bench-dm")
    parser.add_argument("--small", default="1000x100000", help="COUNTxBYTES")
    parser.add_argument("--large", default="4x500000000", help="COUNTxBYTES")
    parser.add_argument("--keep", action="store_true", help="leave the testbed up")
    parser.add_argument("--write", type=Path, help="keep the tables in this Markdown file")
    args = parser.parse_args()
    if podman.container_by_name(f"{args.instance}-client") is None:
        print(f"bringing data-movement up as {args.instance}", file=sys.stderr)
        testbed("up", "data-movement", "--instance", args.instance, "--no-verify")
    checks_view = Testbed(StateDir(args.instance).nodes_file)
    tokens = StorageTokens(checks_view, checks_view.host("client"))
    port = int(checks_view.value("xrootd_https_port"))
    rucio = on_client(args.instance, tokens)
    rows = []
    try:
        for label, spec in (("small", args.small), ("large", args.large)):
            count, size = dataset(spec)
            name = f"bench-{label}-{uuid.uuid4().hex[:8]}"
            print(f"writing {count} x {size} bytes to SITE1", file=sys.stderr)
            ca_file = checks_view.value("testbed_ca_file")
            made = rucio(
                "written-dataset", "testbed", name, "SITE1", count, size, ca_file, token_for="site1"
            )
            total = sum(size + index for index in range(count))  # the probe's file sizes
            replicas = rucio("replicas", made["did"]).values()
            sources = [https_url(r["replicas"]["SITE1"], port) for r in replicas]
            settle(args.instance)
            raw = raw_figure(args.instance, tokens, sources, total, port, ca_file)
            settle(args.instance)
            since = time.time()
            ruled, seen, rule = rule_figure(args.instance, rucio, made["did"], count, total)
            split = rule_split(args.instance, rule, since)
            rows.append(Row(f"{label} ({spec})", ruled, seen, raw, split))
    finally:
        tokens.close()
        if not args.keep:
            testbed("down", args.instance)
    text = tables(rows)
    print(text)
    if args.write:
        written_by = provenance("python -m tests.benchmark.replication --write")
        args.write.write_text(f"# Replication throughput\n\n{written_by}\n\n{text}\n")


def tables(rows: list[Row]) -> str:
    lines = [
        "| dataset | rucio s | raw s | rucio MB/s | raw TPC MB/s | rucio files/s | raw files/s "
        "| rucio / raw | rule as the client saw it |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        ruled, raw = row.ruled, row.raw
        lines.append(
            f"| {row.label} | {ruled.seconds:.1f} | {raw.seconds:.1f} | {ruled.mb_per_s:.2f} "
            f"| {raw.mb_per_s:.2f} | {ruled.files_per_s:.2f} | {raw.files_per_s:.2f} "
            f"| {raw.seconds / ruled.seconds:.2f}x | {row.seen:.1f} s |"
        )
    lines += [
        "",
        "| dataset | rule s per file | waiting for the submitter | transfer tool's start "
        "| copy | poller and finisher | storage tokens asked |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        ruled, split = row.ruled, row.split
        lines.append(
            f"| {row.label} | {ruled.seconds / ruled.files:.3f} | {split.queued:.2f} "
            f"| {split.tool_start:.2f} | {split.copy:.2f} | {split.poll_finish:.2f} "
            f"| {split.tokens} ({split.tokens_s:.2f} s) |"
        )
    lines.append(
        "\nrucio: a rule for one copy at SITE2, from its creation until the finisher set it OK, "
        "as Rucio recorded it; the client, asking every second, saw it a little later (last "
        "column). raw: curl's HTTP COPY of each file in turn between the same endpoints, "
        "trusting the testbed's CA alone. Per transfer: medians over the "
        "rule's transfers, in seconds (transfers overlap, so they do not add up to the rule's "
        "time); storage tokens: those the submitter asked the issuer for during the rule "
        "(it keeps each until shortly before it expires)."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
