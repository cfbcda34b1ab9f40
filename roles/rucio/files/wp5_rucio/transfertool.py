"""The gfal2 transfer tool: Rucio's Transfertool interface over local gfal2 workers.

submit() records a job and starts a worker process for it; bulk_query() reads the job
records back. The conveyor's submitter, poller and finisher keep their usual roles, so
retries, source ranking and rule evaluation are Rucio's own.
"""

from __future__ import annotations

import functools
import json
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rucio.db.sqla.constants import RequestState
from rucio.transfertool.transfertool import (
    TransferStatusReport,
    Transfertool,
    TransferToolBuilder,
)

from wp5_rucio import jobs, tokens

_STATES = {
    jobs.DONE: RequestState.DONE,
    jobs.FAILED: RequestState.FAILED,
    jobs.CANCELLED: RequestState.FAILED,
}
# Files one job (one worker process) copies at most.
JOB_FILES = 200
# Workers this process started; reaped on the next submission so none lingers as a zombie.
_WORKERS: list[subprocess.Popen[bytes]] = []


def _utc(timestamp: float | None) -> datetime | None:
    if not timestamp:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).replace(tzinfo=None)


# Rucio is installed on the Rucio node only: where mypy runs its classes are Any.
class Gfal2TransferStatusReport(TransferStatusReport):  # type: ignore[misc]
    supported_db_fields = [
        "state",
        "external_id",
        "started_at",
        "transferred_at",
        "source_rse_id",
        "err_msg",
    ]

    def __init__(self, request_id: str, job: dict[str, Any], item: dict[str, Any] | None) -> None:
        super().__init__(request_id)
        self._job = job
        self._item = item or {}
        # Every field stays empty until the copy has finished: Rucio treats any non-empty
        # field as a state change to record.
        self.external_id: str | None = None
        self.source_rse_id: str | None = None
        self.state: RequestState | None = None
        self.err_msg: str | None = None
        self.started_at: datetime | None = None
        self.transferred_at: datetime | None = None

    def __str__(self) -> str:
        return (
            f"gfal2 job {self._job.get('id')}: {self._item.get('src')} -> "
            f"{self._item.get('dst')} ({self._item.get('state', self._job.get('state'))})"
        )

    def initialize(self, session: Any, logger: Any = logging.log) -> None:
        state = self._item.get("state") or self._job.get("state")
        if state in _STATES:
            self.state = _STATES[state]
            self.external_id = self._job.get("id")
            self.source_rse_id = self._item.get("src_rse_id")
            self.err_msg = self._item.get("reason") or self._job.get("reason") or None
            # The file's own copy, where the worker recorded it (several run at once).
            self.started_at = _utc(self._item.get("started_at") or self._job.get("started_at"))
            self.transferred_at = _utc(self._item.get("finished_at"))

    def get_monitor_msg_fields(self, session: Any, logger: Any = logging.log) -> dict[str, Any]:
        self.ensure_initialized(session, logger)
        return {
            "src-url": self._item.get("src"),
            "dst-url": self._item.get("dst"),
            "reason": self.err_msg,
            "transferred_at": self.transferred_at,
        }


class Gfal2Transfertool(Transfertool):  # type: ignore[misc]
    """Third-party copies run by gfal2 on the Rucio host (root:// and davs://)."""

    external_name = "gfal2"
    required_rse_attrs = ()
    supported_schemes = {"root", "davs", "https"}

    def __init__(self, external_host: str = "gfal2", logger: Any = logging.log, **_: Any) -> None:
        super().__init__(external_host, logger)

    @classmethod
    def submission_builder_for_path(
        cls, transfer_path: list[Any], logger: Any = logging.log
    ) -> tuple[list[Any], TransferToolBuilder | None]:
        # One hop at a time; a multi-hop path is submitted hop by hop by the conveyor.
        return transfer_path[:1], TransferToolBuilder(cls, external_host="gfal2")

    def group_into_submit_jobs(self, transfer_paths: Iterable[list[Any]]) -> list[dict[str, Any]]:
        # One job per pair of endpoints (as FTS3 bulk jobs are), at most JOB_FILES files:
        # its worker copies them several at a time, each file's result its own.
        by_link: dict[tuple[str, str], list[Any]] = {}
        for path in transfer_paths:
            by_link.setdefault((path[0].src.rse.id, path[0].dst.rse.id), []).extend(path)
        return [
            {"transfers": transfers[start : start + JOB_FILES], "job_params": {}}
            for transfers in by_link.values()
            for start in range(0, len(transfers), JOB_FILES)
        ]

    def submit(
        self, transfers: Iterable[Any], job_params: dict[str, str], timeout: int | None = None
    ) -> str:
        for worker in list(_WORKERS):
            if worker.poll() is not None:
                _WORKERS.remove(worker)
        job_id = uuid.uuid4().hex
        files = [
            {
                "request_id": transfer.rws.request_id,
                "scope": str(transfer.rws.scope),
                "name": transfer.rws.name,
                "src": transfer.source_url(transfer.src),
                "src_rse_id": transfer.src.rse.id,
                "dst_rse_id": transfer.dst.rse.id,
                "dst": transfer.dest_url,
                "adler32": transfer.rws.adler32,
                "bytes": transfer.rws.byte_count,
                "state": jobs.SUBMITTED,
            }
            for transfer in transfers
        ]
        job: dict[str, Any] = {
            "id": job_id,
            "state": jobs.SUBMITTED,
            "submitted_at": time.time(),
            "files": files,
        }
        jobs.write_job(job)
        # Asked for here, where they stay cached, and handed to the worker on its stdin.
        credentials = tokens.copy_tokens(
            tokens.Copy(item["src"], item["src_rse_id"], item["dst"], item["dst_rse_id"])
            for item in files
        )
        worker = subprocess.Popen(
            [sys.executable, "-m", "wp5_rucio.worker", job_id],
            stdin=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            assert worker.stdin is not None
            worker.stdin.write(json.dumps(credentials).encode())
            worker.stdin.close()
        except BrokenPipeError:
            pass  # the worker died at once; bulk_query reports the job as failed
        # The worker writes its own pid into the record: it is the record's only writer
        # from here on, so a copy that finishes at once cannot have its result overwritten.
        _WORKERS.append(worker)
        self.logger(logging.INFO, "gfal2 job %s started (pid %d): %s", job_id, worker.pid, files)
        return job_id

    def bulk_query(
        self, requests_by_eid: Mapping[str, Mapping[str, Any]], timeout: int | None = None
    ) -> dict[str, dict[str, TransferStatusReport]]:
        response: dict[str, dict[str, TransferStatusReport]] = {}
        for job_id, requests in requests_by_eid.items():
            job = jobs.read_job(job_id) or {
                "id": job_id,
                "state": jobs.FAILED,
                "reason": "gfal2 job record lost",
            }
            # A worker that is just starting gets a moment to write its pid.
            if (
                job["state"] not in jobs.FINAL_STATES
                and not jobs.worker_alive(job.get("pid"))
                and time.time() - job.get("updated_at", 0) > 30
            ):
                job["state"] = jobs.FAILED
                job["reason"] = "gfal2 worker exited without a result"
                for item in job.get("files", []):
                    if item["state"] not in jobs.FINAL_STATES:
                        item["state"], item["reason"] = jobs.FAILED, job["reason"]
                jobs.write_job(job)
            by_request = {f["request_id"]: f for f in job.get("files", [])}
            response[job_id] = {
                request_id: Gfal2TransferStatusReport(request_id, job, by_request.get(request_id))
                for request_id in requests
            }
        return response

    def cancel(self, transfer_ids: Sequence[str], timeout: int | None = None) -> bool:
        for job_id in transfer_ids:
            job = jobs.read_job(job_id)
            if job and job["state"] not in jobs.FINAL_STATES:
                job["state"], job["reason"] = jobs.CANCELLED, "cancelled by Rucio"
                jobs.write_job(job)
        return True

    def update_priority(self, transfer_id: str, priority: int, timeout: int | None = None) -> bool:
        return True


def register() -> None:
    """Add the tool to Rucio's table of transfer tools, before a daemon reads its
    configuration."""
    from rucio.core import transfer as transfer_core

    transfer_core.TRANSFERTOOL_CLASSES_BY_NAME.setdefault(
        Gfal2Transfertool.external_name, Gfal2Transfertool
    )


def poll_every_round() -> None:
    """Have the poller read every submitted transfer on each round. Rucio's poller skips a
    request for ten minutes after it polled it (``processed_at_delay``), which suits FTS3,
    whose completion messages reach Rucio another way; this tool's workers only record
    their results, and reading them is a local file read."""
    from rucio.core import request as request_core

    request_core.get_and_mark_next = functools.partial(
        request_core.get_and_mark_next, processed_at_delay=0
    )
