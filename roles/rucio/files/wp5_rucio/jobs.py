"""Transfer jobs on disk: written by the submitter, run by a worker, read by the poller.

Every conveyor daemon of a Rucio host shares the job folder, so a job survives a restart
of any of them; a job whose worker died without a result is reported as failed, and
Rucio retries it like any other failed transfer.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

JOBS_DIR = Path(os.environ.get("WP5_RUCIO_GFAL2_JOBS", "/var/lib/rucio/gfal2-jobs"))

SUBMITTED = "SUBMITTED"
ACTIVE = "ACTIVE"
DONE = "DONE"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
FINAL_STATES = {DONE, FAILED, CANCELLED}


def job_path(job_id: str) -> Path:
    return JOBS_DIR / f"{job_id}.json"


def write_job(job: dict[str, Any]) -> None:
    """Replace the job's record atomically, so a reader never sees half of it."""
    JOBS_DIR.mkdir(parents=True, exist_ok=True)
    job["updated_at"] = time.time()
    fd, tmp = tempfile.mkstemp(dir=JOBS_DIR, prefix=".job-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(job, handle)
    os.replace(tmp, job_path(job["id"]))


def read_job(job_id: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(job_path(job_id).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return data


def worker_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A finished child that nobody reaped is a zombie: not alive.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
