"""Time `testbed up` on the local target and print a table.

    python -m tests.benchmark.run [--testbeds hpc-access,data-movement,pipelines]
                                  [--compute-nodes 2,4,8] [--modes cold,warm,idempotent,baked]

For each testbed (and for hpc-access with each number of CPU compute nodes) it runs, in
this order: cold (no base image, no baked image: everything is built), warm (base image
cached), idempotent (`up` again on the warm instance), bake (`testbed bake`) and baked
(`up` from the baked images). Each instance is taken down before the next mode, and baked
images are removed at the end. Times are wall-clock seconds with the configure phase in
brackets; compare them with each other, on the same machine, not across machines.

This takes long (about 10 minutes a testbed on two cores) and removes the cached base
image for the cold runs; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from testbeds import paths
from testbeds.targets import podman

MODES = ("cold", "warm", "idempotent", "bake", "baked")


class Failed(Exception):
    """A `testbed` command failed; the row records it and the benchmark goes on."""


def testbed(*args: str) -> tuple[float, dict[str, Any]]:
    start = time.monotonic()
    proc = subprocess.run(["testbed", *args, "--json"], capture_output=True, text=True)
    seconds = time.monotonic() - start
    if proc.returncode not in (0, 1):  # 1: up, but some checks failed (the row says so)
        print(f"testbed {' '.join(args)} failed ({proc.returncode}):", file=sys.stderr)
        print(proc.stderr[-3000:], file=sys.stderr)
        raise Failed(f"FAILED after {seconds:.0f}")
    if proc.returncode == 1:
        failed = [line for line in proc.stderr.splitlines() if line.startswith("FAILED ")]
        print("\n".join(failed), file=sys.stderr)
    return seconds, json.loads(proc.stdout or "{}")


def remove_images(pattern: str) -> None:
    refs = podman.run("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    doomed = [ref for ref in refs if pattern in ref]
    if doomed:
        podman.run("rmi", "--force", *doomed)


def scaled_hpc_access(compute_nodes: int, folder: Path) -> str:
    """hpc-access with this many CPU compute nodes (the topology's leaf follows them)."""
    definition = yaml.safe_load((paths.DEFINITIONS_DIR / "hpc-access.yaml").read_text())
    for group in definition["node_groups"]:
        if group["name"] == "cpu":
            group["count"] = compute_nodes
    for switch in definition["vars"].get("slurm_topology", []):
        if switch["name"] == "leaf1":
            switch["nodes"] = [f"cpu{i}" for i in range(1, compute_nodes + 1)]
    path = folder / f"hpc-access-{compute_nodes}cpu.yaml"
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    return str(path)


def bench(name: str, source: str, modes: list[str]) -> dict[str, str]:
    instance = f"bench-{name}"[:40]
    row: dict[str, str] = {}

    def up(*extra: str) -> str:
        seconds, result = testbed("up", source, "--instance", instance, *extra)
        configure = result.get("timings_s", {}).get("configure", 0.0)
        checks = result.get("verify") or {}
        verdict = (
            ""
            if not checks
            else f" {checks.get('tests')} checks ok"
            if checks.get("ok")
            else " CHECKS FAILED"
        )
        return f"{seconds:.0f} [{configure:.0f}]{verdict}"

    def cold() -> str:
        remove_images("wp5-testbeds-")
        return up()

    print(f"{name}: {', '.join(modes)}", file=sys.stderr)
    # (mode, step, take the instance down after it): idempotent runs on the warm instance
    # and baked after the bake, every other mode starts from nothing.
    steps: list[tuple[str, Callable[[], str], bool]] = []
    if "cold" in modes:
        steps.append(("cold", cold, True))
    if "warm" in modes or "idempotent" in modes:
        steps.append(("warm", up, "idempotent" not in modes))
        if "idempotent" in modes:
            steps.append(("idempotent", lambda: up("--no-verify"), True))
    if "baked" in modes:
        steps.append(("bake", lambda: f"{testbed('bake', source)[0]:.0f}", False))
        steps.append(("baked", up, True))
    for mode, step, down_after in steps:
        if mode == "baked" and row["bake"].startswith("FAILED"):
            continue
        try:
            row[mode] = step()
        except Failed as failure:
            row[mode] = str(failure)
        if down_after:
            testbed("down", instance)
    remove_images("wp5-testbeds-baked-")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testbeds", default="hpc-access,data-movement,pipelines")
    parser.add_argument("--compute-nodes", default="2,4,8", help="hpc-access CPU node counts")
    parser.add_argument("--modes", default="cold,warm,idempotent,baked")
    args = parser.parse_args()
    modes = args.modes.split(",")
    rows: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in filter(None, args.testbeds.split(",")):
            rows[name] = bench(name, name, modes)
        for count in filter(None, args.compute_nodes.split(",")):
            name = f"hpc-access {count} cpu"
            rows[name] = bench(f"hpc{count}", scaled_hpc_access(int(count), Path(tmp)), modes)
    print("| testbed | " + " | ".join(MODES) + " |")
    print("| --- |" + " --- |" * len(MODES))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(row.get(mode, "-") for mode in MODES) + " |")
    print("\nseconds, wall clock [configure phase]; bake is the one-off image build")


if __name__ == "__main__":
    main()
