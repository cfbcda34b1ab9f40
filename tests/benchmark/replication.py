"""Replication throughput of the data-movement testbed: a Rucio rule against a plain
third-party-copy loop over the same files between the same endpoints.

    python -m tests.benchmark.replication [--instance bench-dm] [--small 1000x100000]
                                          [--large 4x500000000] [--keep]

For each dataset (COUNTxBYTES) it uploads the files to SITE1 with Rucio, then times

- rucio: a rule for one copy on SITE2, from its creation until Rucio reports it OK (the
  judge, the conveyor's submitter, the gfal2 transfer tool's third-party copies and the
  poller and finisher all inside the figure);
- raw: `xrdcp --tpc only` from SITE1's replicas to SITE2, one file after another, from
  the client node: what the endpoints do without Rucio;

and prints MB/s and files/s for both and their ratio. The testbed (instance `--instance`)
is brought up if it is not up, and taken down at the end unless `--keep`. It takes long
with the default sizes (5 GB written twice); not part of the test suite."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from testbeds import paths
from testbeds.targets import podman

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


def on_client(instance: str) -> Callable[..., Any]:
    client = f"{instance}-client"
    podman.run("cp", str(PROBE), f"{client}:/tmp/rucio_probe.py")

    def rucio(*args: object) -> Any:
        proc = podman.exec_(
            client,
            "/opt/rucio-clients/venv/bin/python",
            "/tmp/rucio_probe.py",
            *map(str, args),
            timeout=RULE_TIMEOUT_S,
        )
        if proc.returncode != 0:
            sys.exit(f"rucio {args[0]} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    return rucio


def rule_figure(rucio: Callable[..., Any], did: str, files: int, size: int) -> Figure:
    start = time.monotonic()
    rule = rucio("rule-add", did, 1, "SITE2")["rule"]
    while rucio("rule", rule)["state"] != "OK":
        if time.monotonic() - start > RULE_TIMEOUT_S:
            sys.exit(f"rule {rule} not OK after {RULE_TIMEOUT_S} s: {rucio('rule', rule)}")
        time.sleep(1)
    return Figure(time.monotonic() - start, files, size)


def absolute(pfn: str) -> str:
    """root://host:port//path: Rucio's PFNs give the path without its leading slash, which
    XRootD reads as relative."""
    head, _, path = pfn.removeprefix("root://").partition("/")
    return f"root://{head}//{path.lstrip('/')}"


def raw_figure(instance: str, sources: list[str], size: int) -> Figure:
    """One shell on the client copies every file, so only the copies are timed."""
    target = f"root://site2:1094//data/bench-raw-{uuid.uuid4().hex[:8]}"
    copies = "\n".join(
        f"xrdcp -s -f --tpc only {shlex.quote(src)} {target}/{src.rsplit('/', 1)[1]} || exit 1"
        for src in sources
    )
    script = f"start=$(date +%s.%N)\n{copies}\nend=$(date +%s.%N)\necho $start $end\n"
    proc = podman.exec_(f"{instance}-client", "sh", "-c", script, timeout=RULE_TIMEOUT_S)
    if proc.returncode != 0:
        sys.exit(f"raw copy failed:\n{proc.stderr[-3000:]}")
    start, end = map(float, proc.stdout.split()[-2:])
    return Figure(end - start, len(sources), size)


def dataset(spec: str) -> tuple[int, int]:
    count, size = spec.lower().split("x")
    return int(count), int(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--instance", default="bench-dm")
    parser.add_argument("--small", default="1000x100000", help="COUNTxBYTES")
    parser.add_argument("--large", default="4x500000000", help="COUNTxBYTES")
    parser.add_argument("--keep", action="store_true", help="leave the testbed up")
    args = parser.parse_args()
    if podman.container_by_name(f"{args.instance}-client") is None:
        print(f"bringing data-movement up as {args.instance}", file=sys.stderr)
        testbed("up", "data-movement", "--instance", args.instance, "--no-verify")
    rucio = on_client(args.instance)
    rows = []
    try:
        for label, spec in (("small", args.small), ("large", args.large)):
            count, size = dataset(spec)
            name = f"bench-{label}-{uuid.uuid4().hex[:8]}"
            print(f"uploading {count} x {size} bytes to SITE1", file=sys.stderr)
            made = rucio("dataset", "testbed", name, "SITE1", count, size)
            total = sum(size + index for index in range(count))  # the probe's file sizes
            replicas = rucio("replicas", made["did"]).values()
            sources = [absolute(r["replicas"]["SITE1"]) for r in replicas]
            raw = raw_figure(args.instance, sources, total)
            ruled = rule_figure(rucio, made["did"], count, total)
            rows.append((f"{label} ({spec})", ruled, raw))
    finally:
        if not args.keep:
            testbed("down", args.instance)
    print("| dataset | rucio MB/s | raw TPC MB/s | rucio files/s | raw files/s | rucio / raw |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, ruled, raw in rows:
        print(
            f"| {label} | {ruled.mb_per_s:.2f} | {raw.mb_per_s:.2f} | {ruled.files_per_s:.2f} "
            f"| {raw.files_per_s:.2f} | {raw.seconds / ruled.seconds:.2f}x |"
        )


if __name__ == "__main__":
    main()
