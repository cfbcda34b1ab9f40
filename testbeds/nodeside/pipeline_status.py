#!/usr/bin/python3
"""wp5-pipeline-status [REVISION]: the pipelines Buildbot ran, as JSON (Buildbot here has no
web UI). Each pipeline lists its jobs in order with the worker that ran them and their
result; a failed job, and every HPC job, carries the end of its output.

Reads the master's database (--db) directly, read-only, as the master's user. The
buildbot_master role installs it with a wrapper, run as root on the master's node, that
names the database and drops to that user."""

from __future__ import annotations

import argparse
import bz2
import json
import sqlite3
import sys
import zlib
from collections.abc import Callable
from typing import Any

HPC_BUILDER = "job-hpc"
RESULTS = ["success", "warnings", "failure", "skipped", "exception", "retry", "cancelled"]
DECOMPRESS: dict[int, Callable[[bytes], bytes]] = {
    0: lambda b: b,
    1: zlib.decompress,
    2: bz2.decompress,
}


def result_name(code: int | None) -> str | None:
    return None if code is None else RESULTS[code] if 0 <= code < len(RESULTS) else str(code)


def prop(db: sqlite3.Connection, build_id: int, name: str) -> Any:
    row = db.execute(
        "SELECT value FROM build_properties WHERE buildid = ? AND name = ?", (build_id, name)
    ).fetchone()
    return json.loads(row[0]) if row else None


def output_tail(
    db: sqlite3.Connection, build_id: int, lines: int, failed_only: bool = True
) -> list[str] | None:
    """The last lines of the stdio log of the build's failed step (or its last step with a
    log: the step that revokes the job's credential writes none)."""
    failed = " AND results NOT IN (0, 1, 3)" if failed_only else ""
    step = db.execute(
        f"SELECT id FROM steps s WHERE buildid = ?{failed}"
        " AND EXISTS (SELECT 1 FROM logs l WHERE l.stepid = s.id) ORDER BY number DESC",
        (build_id,),
    ).fetchone()
    if step is None:
        return None
    body: list[str] = []
    for log_id, kind in db.execute(
        "SELECT id, type FROM logs WHERE stepid = ? ORDER BY id", (step[0],)
    ):
        text = []
        for content, method in db.execute(
            "SELECT content, compressed FROM logchunks WHERE logid = ? ORDER BY first_line",
            (log_id,),
        ):
            raw = content if isinstance(content, bytes) else content.encode()
            decompress = DECOMPRESS.get(method, DECOMPRESS[0])
            text.append(decompress(raw).decode("utf-8", "replace"))
        if kind == "s":
            # A command's log prefixes each line with its stream: o (stdout), e (stderr),
            # h (header).
            body += [line[1:] for line in "".join(text).splitlines() if line[:1] in ("o", "e")]
        else:
            # A step's own text log (the pipeline file's errors), as written.
            body += "".join(text).splitlines()
    return body[-lines:]


def build_row(db: sqlite3.Connection, build_id: int, lines: int) -> dict[str, Any]:
    number, builder, worker, results, state, started, complete = db.execute(
        "SELECT b.number, bl.name, w.name, b.results, b.state_string, b.started_at, b.complete_at"
        " FROM builds b JOIN builders bl ON bl.id = b.builderid"
        " LEFT JOIN workers w ON w.id = b.workerid WHERE b.id = ?",
        (build_id,),
    ).fetchone()
    row: dict[str, Any] = {
        "builder": builder,
        "number": number,
        "worker": worker,
        "result": result_name(results),
        "finished": complete is not None,
        "duration_s": None if complete is None else complete - started,
        "state": state,
    }
    if results not in (None, 0, 1):
        row["output_tail"] = output_tail(db, build_id, lines)
    elif results is not None and builder == HPC_BUILDER:
        # An HPC job's output is its result too: the Slurm job's, green or red.
        row["output_tail"] = output_tail(db, build_id, lines, failed_only=False)
    return row


def pipelines(db: sqlite3.Connection, revision: str | None, lines: int) -> list[dict[str, Any]]:
    query = (
        "SELECT b.id, ss.revision, ss.branch FROM builds b"
        " JOIN builders bl ON bl.id = b.builderid"
        " JOIN buildrequests br ON br.id = b.buildrequestid"
        " JOIN buildset_sourcestamps bss ON bss.buildsetid = br.buildsetid"
        " JOIN sourcestamps ss ON ss.id = bss.sourcestampid"
        " WHERE bl.name = 'pipeline'"
        + (" AND ss.revision = ?" if revision else "")
        + " ORDER BY b.id"
    )
    out: list[dict[str, Any]] = []
    for build_id, rev, branch in db.execute(query, (revision,) if revision else ()):
        pipeline = build_row(db, build_id, lines)
        pipeline.update(revision=rev, branch=branch, jobs=[])
        for (job_id,) in db.execute(
            "SELECT b.id FROM builds b JOIN buildrequests br ON br.id = b.buildrequestid"
            " JOIN buildsets bs ON bs.id = br.buildsetid WHERE bs.parent_buildid = ? ORDER BY b.id",
            (build_id,),
        ):
            job = build_row(db, job_id, lines)
            job["name"] = prop(db, job_id, "job_name")
            pipeline["jobs"].append(job)
        out.append(pipeline)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("revision", nargs="?", help="only pipelines of this commit")
    parser.add_argument("--db", required=True, help="the master's state.sqlite")
    parser.add_argument("--lines", type=int, default=30, help="output lines of a failed or HPC job")
    args = parser.parse_args()
    try:
        db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
        print(json.dumps(pipelines(db, args.revision, args.lines), indent=2))
    except sqlite3.Error as error:
        sys.exit(f"wp5-pipeline-status: {args.db}: {error}")


if __name__ == "__main__":
    main()
