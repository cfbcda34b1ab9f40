"""Time a testbed's whole lifecycle on the local target and print every row in seconds, as a
ratio to its target and as a distance from the floor.

    python -m tests.benchmark.lifecycle [--testbeds hpc-access,data-movement,pipelines]
                                        [--compute-nodes 2,4,8] [--modes warm,noop,baked]
                                        [--cold] [--write docs/measured/lifecycle.md]

For each testbed (and hpc-access with each number of CPU compute nodes) it runs, in order:

- cold (only with --cold): no base image, no baked image, everything built;
- warm: the base image cached, nothing baked: `up` with every check;
- noop: `up` again on the warm instance (configure phase, changed count) and `verify` alone;
- bake: `testbed bake`, then baked: `up` from the baked images with every check;
- floor: containers started from the baked images until systemd runs, no Ansible, no
  checks (the provision phase of the baked `up`): what no configuration could beat.

Each testbed runs as a copy of its definition named `bench-NAME`, so its bake makes images of
its own, which are removed at the end (a bake by hand of NAME is never touched). Each
instance is taken down before the next mode. --cold removes the base image first, unless a
container still runs from it. Compare figures with each other on the same machine, not
across machines: these machines are shared, so say them as ratios. This takes tens of
minutes a testbed on two cores; it is not part of the test suite. --write keeps the table
in one file (the figures other documents point to, never copy).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbeds import paths
from testbeds.targets.local import podman
from testbeds.targets.local.baked import BAKED_REPOSITORY
from testbeds.targets.local.image import IMAGE_REPOSITORY
from tests.benchmark.provenance import provenance

# Targets (seconds) on a 2-core machine: (testbed, row) -> seconds. Rows without one are
# reported without a ratio.
TARGETS: dict[tuple[str, str], float] = {
    ("hpc-access", "verify"): 45,
    ("research-infrastructure", "verify"): 120,
    ("hpc-access", "noop configure"): 20,
    ("research-infrastructure", "noop configure"): 45,
    ("hpc-access", "baked up"): 90,
    ("hpc-access", "baked configure"): 30,
    ("data-movement", "baked up"): 90,
    ("pipelines", "baked up"): 90,
    ("hpc-access", "bake"): 200,
    ("data-movement", "bake"): 200,
    ("pipelines", "bake"): 200,
    ("hpc-access", "warm up"): 240,
}
ROWS = (
    "cold up",
    "warm up",
    "warm configure",
    "warm verify",
    "noop configure",
    "noop changed",
    "verify",
    "bake",
    "baked up",
    "baked configure",
    "baked verify",
    "floor",
)


class Failed(Exception):
    """A `testbed` command failed; the row records it and the benchmark goes on."""


@dataclass
class Row:
    testbed: str
    figures: dict[str, float | str] = field(default_factory=dict)


def testbed(*args: str) -> tuple[float, dict[str, Any]]:
    start = time.monotonic()
    proc = subprocess.run(["testbed", *args, "--json"], capture_output=True, text=True)
    seconds = time.monotonic() - start
    if proc.returncode not in (0, 1):  # 1: up, but some checks failed (the row says so)
        print(f"testbed {' '.join(args)} failed ({proc.returncode}):", file=sys.stderr)
        print(proc.stderr[-3000:], file=sys.stderr)
        raise Failed(f"FAILED after {seconds:.0f} s")
    if proc.returncode == 1:
        # pytest's summary lines: failed checks, and errors (a check that did not run).
        failed = [
            line for line in proc.stderr.splitlines() if line.startswith(("FAILED ", "ERROR "))
        ]
        print("\n".join(failed) or proc.stderr[-3000:], file=sys.stderr)
    return seconds, json.loads(proc.stdout or "{}")


def image_refs(prefix: str) -> set[str]:
    refs = podman.run("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    return {ref for ref in refs if ref.startswith(prefix)}


def remove_images(prefix: str, keep: frozenset[str] = frozenset()) -> None:
    """Images named with the prefix, except `keep`; one a container runs from stays (podman
    refuses it without --force, which would remove that container too)."""
    for ref in sorted(image_refs(prefix) - keep):
        if podman.run("rmi", ref, check=False).returncode != 0:
            print(f"kept {ref}: a container still uses it", file=sys.stderr)


def bench_definition(shipped: str, folder: Path, compute_nodes: int | None = None) -> str:
    """A copy of a shipped definition named `bench-NAME`, so that the images its bake makes
    are the benchmark's own (removed at the end), never the ones `testbed bake NAME` made;
    for hpc-access, with this many CPU compute nodes (the topology's leaf follows them)."""
    definition = yaml.safe_load((paths.DEFINITIONS_DIR / f"{shipped}.yaml").read_text())
    suffix = f"-{compute_nodes}cpu" if compute_nodes else ""
    definition["name"] = f"bench-{shipped}{suffix}"[:31]
    if compute_nodes:
        for group in definition["node_groups"]:
            if group["name"] == "cpu":
                group["count"] = compute_nodes
        for switch in definition["vars"].get("slurm_topology", []):
            if switch["name"] == "leaf1":
                switch["nodes"] = [f"cpu{i}" for i in range(1, compute_nodes + 1)]
    path = folder / f"{definition['name']}.yaml"
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    return str(path)


def bench(name: str, source: str, modes: set[str], cold: bool) -> Row:
    instance = f"bench-{name}"[:31]
    row = Row(name)
    # Any `up` of a testbed with an elastic group bakes that group's image: the benchmark's
    # images are those that appear from here on.
    own = f"{BAKED_REPOSITORY}-{Path(source).stem}-"
    before = frozenset(image_refs(own))

    def up(prefix: str, *extra: str) -> None:
        seconds, result = testbed("up", source, "--instance", instance, *extra)
        row.figures[f"{prefix} up"] = seconds
        row.figures[f"{prefix} configure"] = result.get("timings_s", {}).get("configure", 0.0)
        if result.get("timings_s", {}).get("verify") is not None:
            row.figures[f"{prefix} verify"] = result["timings_s"]["verify"]
        if prefix == "baked":
            row.figures["floor"] = result.get("timings_s", {}).get("provision", 0.0)
        checks = result.get("verify") or {}
        if checks and not checks.get("ok"):
            row.figures[f"{prefix} up"] = f"{seconds:.0f} CHECKS FAILED"

    def step(label: str, action: Any) -> None:
        print(f"{name}: {label}", file=sys.stderr)
        try:
            action()
        except Failed as failure:
            row.figures[label] = str(failure)

    def down() -> None:
        testbed("down", instance)

    if cold:
        remove_images(f"{IMAGE_REPOSITORY}:")
        step("cold up", lambda: up("cold"))
        down()
    if "warm" in modes or "noop" in modes:
        step("warm up", lambda: up("warm"))
        if "noop" in modes:

            def noop() -> None:
                _, result = testbed("up", source, "--instance", instance, "--no-verify")
                row.figures["noop configure"] = result["timings_s"]["configure"]
                row.figures["noop changed"] = str((result.get("ansible") or {}).get("changed"))
                seconds, _ = testbed("verify", instance)
                row.figures["verify"] = seconds

            step("noop configure", noop)
        down()
    if "baked" in modes:

        def bake() -> None:
            row.figures["bake"] = testbed("bake", source)[0]

        step("bake", bake)
        if not str(row.figures.get("bake", "")).startswith("FAILED"):
            step("baked up", lambda: up("baked"))
            down()
    remove_images(own, keep=before)
    return row


def cell(row: Row, key: str) -> str:
    value = row.figures.get(key)
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    target = TARGETS.get((row.testbed, key))
    text = f"{value:.0f}"
    if target:
        text += f" ({value / target:.2f}x of {target:.0f})"
    floor = row.figures.get("floor")
    if key.endswith(" up") and isinstance(floor, float) and floor > 0:
        text += f" [floor +{value - floor:.0f}]"
    return text


def table(rows: list[Row]) -> str:
    keys = [k for k in ROWS if any(k in r.figures for r in rows)]
    lines = ["| row | " + " | ".join(r.testbed for r in rows) + " |"]
    lines.append("| --- |" + " --- |" * len(rows))
    lines += [f"| {k} | " + " | ".join(cell(r, k) for r in rows) + " |" for k in keys]
    lines.append(
        "\nSeconds, wall clock; (ratio of the target); [seconds above the floor: containers "
        "from the baked images with systemd running, no Ansible]. `noop changed` is Ansible's "
        "changed count of the second `up`."
    )
    scaled = [r for r in rows if r.testbed.startswith("hpc-access ") and "cpu" in r.testbed]
    if len(scaled) >= 2:
        first, last = scaled[0], scaled[-1]
        for key in ("warm up", "baked up"):
            a, b = first.figures.get(key), last.figures.get(key)
            if isinstance(a, float) and isinstance(b, float):
                lines.append(f"{key}: {last.testbed} / {first.testbed} = {b / a:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testbeds", default="hpc-access,data-movement,pipelines")
    parser.add_argument("--compute-nodes", default="", help="hpc-access CPU node counts: 2,4,8")
    parser.add_argument("--modes", default="warm,noop,baked")
    parser.add_argument("--cold", action="store_true", help="also build everything from nothing")
    parser.add_argument("--write", type=Path, help="keep the table in this Markdown file")
    args = parser.parse_args()
    modes = set(args.modes.split(","))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in filter(None, args.testbeds.split(",")):
            rows.append(bench(name, bench_definition(name, Path(tmp)), modes, args.cold))
        for count in filter(None, args.compute_nodes.split(",")):
            source = bench_definition("hpc-access", Path(tmp), int(count))
            row = bench(f"hpc{count}", source, modes, args.cold)
            row.testbed = f"hpc-access {count} cpu"
            rows.append(row)
    text = table(rows)
    print(text)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        written_by = provenance("python -m tests.benchmark.lifecycle --write")
        args.write.write_text(f"# Lifecycle benchmark\n\n{written_by}\n\n{text}\n")


if __name__ == "__main__":
    main()
