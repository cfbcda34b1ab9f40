"""High throughput: a job array of many short tasks completes within a bound, and the rate is
reported (slurm.conf follows SchedMD's high-throughput guide; see roles/slurm/vars/main.yml)."""

from __future__ import annotations

import re
from datetime import datetime

from testbeds.checks.helpers import wait_for

ARRAY_TASKS = 500
# Each CPU of the default partition must take a new task at least every two seconds. With
# Slurm's stock scheduler settings and no Epilog (1.5 tasks/s on 4 CPUs here) this bound
# fails; as configured a freed CPU takes the next task at once.
MIN_TASKS_PER_SLOT_PER_S = 0.5


def default_partition_cpus(login) -> tuple[str, int]:
    for line in login.check_output("scontrol show partition -o").splitlines():
        if "Default=YES" in line:
            name = re.search(r"PartitionName=(\S+)", line)
            cpus = re.search(r"TotalCPUs=(\d+)", line)
            assert name and cpus, line
            return name.group(1), int(cpus.group(1))
    raise AssertionError("no default partition")


def test_job_array_of_short_tasks_completes_in_bound(testbed, user_shell, record_property):
    """A 500-task array of trivial tasks, submitted as the research user,
    completes within 500 / (CPUs x 0.5) seconds; jobs/s is reported."""
    login = testbed.host(testbed.group("slurm_login")[0])
    partition, slots = default_partition_cpus(login)
    bound_s = ARRAY_TASKS / (slots * MIN_TASKS_PER_SLOT_PER_S)
    submitted = user_shell(
        login, f"sbatch --parsable --array=1-{ARRAY_TASKS} -t 1 -o /dev/null --wrap true"
    )
    job_id = submitted.stdout.strip().split(";")[0]
    assert submitted.rc == 0 and job_id.isdigit(), f"sbatch said {submitted.stdout!r}"
    try:

        def queued() -> int:
            return len(login.run(f"squeue -h -r -j {job_id} -o %i").stdout.split())

        assert wait_for(lambda: queued() == 0, timeout=bound_s, interval=2), (
            f"{queued()} of {ARRAY_TASKS} tasks still queued after {bound_s:.0f} s "
            f"({slots} CPUs in partition {partition})"
        )
    finally:
        login.run(f"scancel {job_id}")

    def records() -> list[str]:
        out = login.run(f"sacct -n -P -X -j {job_id} --format=State,Start,End")
        return out.stdout.split()

    # slurmdbd receives the records in batches (CommitDelay): wait until all are there.
    assert wait_for(
        lambda: sum(r.startswith("COMPLETED|") for r in records()) == ARRAY_TASKS, timeout=60
    ), f"sacct shows {len(records())} records, not {ARRAY_TASKS} COMPLETED"
    stamps = [r.split("|") for r in records()]
    first = min(datetime.fromisoformat(start) for _, start, _ in stamps)
    last = max(datetime.fromisoformat(end) for _, _, end in stamps)
    span_s = max((last - first).total_seconds(), 1.0)
    rate = ARRAY_TASKS / span_s
    record_property("htc_jobs_per_second", f"{rate:.2f} ({ARRAY_TASKS} tasks in {span_s:.0f} s)")
    record_property("htc_slots", f"{slots} CPUs in partition {partition}")
