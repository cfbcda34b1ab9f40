"""How long the cloud programs take to evaluate under Pulumi's mocks, for a large testbed.

    python -m tests.benchmark.pulumi_programs [--nodes 100] [--repeat 3] [--write FILE]

hpc-access scaled to the given number of nodes (its CPU group grows) is built by the
OpenStack component and by the Kubernetes program, each under the recording mocks the
unit tests use, in this process; the best of `--repeat` runs is printed, with the number
of resources. No Pulumi CLI or cloud is involved: this measures the programs' own work
(the plan, the loops over nodes, the policies), which `pulumi preview` pays on every run.
The goal is under 2 s each for 100 nodes. `--write` keeps the table in that file
(docs/measured/pulumi-programs.md is the place for it). Not part of the test suite."""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pulumi

from testbeds.model.plan import resolve
from testbeds.targets.cloud.offline import RecordingMocks
from testbeds.targets.openstack.program import OpenStackTestbed, OpenStackTestbedArgs
from testbeds.targets.openstack.site import openstack_site
from tests.benchmark.lifecycle import bench_definition
from tests.benchmark.provenance import provenance
from tests.kubernetes_program import run_program

GOAL_S = 2.0


def openstack(definition: str) -> int:
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="bench", stack="bench", preview=False)
    plan = resolve(definition, site="partner-a", target="openstack", instance="bench")

    @pulumi.runtime.test  # type: ignore[misc]
    def build() -> pulumi.Output[object]:
        testbed = OpenStackTestbed(
            plan.instance,
            OpenStackTestbedArgs(plan=plan, site=openstack_site(plan), public_key="ssh-ed25519 A"),
        )
        return testbed.nodes.apply(len)

    build()
    return len(mocks.resources)


def kubernetes(definition: str) -> int:
    return len(run_program(definition, instance="bench").resources)


def best_of(repeat: int, program: Callable[[str], int], definition: str) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        count = program(definition)
        times.append(time.perf_counter() - start)
    return min(times), count


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", type=Path, help="keep the table in this Markdown file")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        others = len(resolve("hpc-access").nodes) - 2  # the default has two CPU nodes
        definition = bench_definition("hpc-access", Path(folder), args.nodes - others)
        nodes = len(resolve(definition).nodes)
        print(f"hpc-access with {nodes} nodes, best of {args.repeat}:")
        for name, program in (("openstack", openstack), ("kubernetes", kubernetes)):
            seconds, resources = best_of(args.repeat, program, definition)
            verdict = "ok" if seconds < GOAL_S else "over"
            print(
                f"  {name:<10} {seconds:6.2f} s  {resources:4d} resources  "
                f"{seconds / GOAL_S:4.2f}x the {GOAL_S:.0f} s goal ({verdict})"
            )
            ratio = f"{seconds / GOAL_S:.2f}x of {GOAL_S:.0f}"
            rows.append(f"| {name} | {seconds:.2f} | {resources} | {ratio} |")
    if args.write:
        command = f"python -m tests.benchmark.pulumi_programs --nodes {args.nodes} --write"
        args.write.write_text(
            "# Cloud programs under Pulumi's mocks\n\n"
            f"{provenance(command)}\n\n"
            f"hpc-access scaled to {nodes} nodes, best of {args.repeat} runs.\n\n"
            "| program | seconds | resources | ratio of the goal |\n| --- | --- | --- | --- |\n"
            + "\n".join(rows)
            + "\n"
        )


if __name__ == "__main__":
    main()
