"""Run one transfer job: a gfal2 third-party copy per file, checksums verified end to end,
several copies at a time.

The expected adler32 is the catalogue's (computed from the bytes when the file was
registered): gfal2 compares it with the checksum the destination reports after the copy,
so a corrupted source or a damaged copy fails the transfer instead of being registered as
a good replica. The source is not asked for its checksum first: that would read every
source file once more, for a comparison the destination's answer already makes.

A job holds the files of one submitter round between one pair of endpoints; up to
WP5_RUCIO_GFAL2_STREAMS of them are copied at once (each stream its own gfal2 context),
so a slow copy holds up one stream, not the job, and one worker's start-up (Python and
gfal2, a good part of a second) is paid per job, not per file.

Where the endpoints take storage tokens, each copy carries two (one to read the source,
one to write the destination), which gfal2 presents as FTS3 does: the destination's in
the HTTP COPY request, the source's handed on for the pull. The submitter, a long-lived
process that keeps its tokens until shortly before they expire, asks the issuer for them
and gives them to the worker on its standard input (never on a command line or on disk).

The worker records each copy's result in its job record, which Rucio's poller reads (the
transfer tool's bulk_query) on its next round. It imports nothing from Rucio, whose
modules take seconds of CPU to import, which one process per copy would pay each time.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gfal2

from wp5_rucio import jobs

COPY_TIMEOUT_S = 600
STREAMS = max(1, int(os.environ.get("WP5_RUCIO_GFAL2_STREAMS", "4")))


def present_tokens(context: Any, item: dict[str, Any], credentials: dict[str, Any]) -> str:
    """Give gfal2 the token for each end of the copy that needs one; an error message if
    one is missing."""
    for url in (item["src"], item["dst"]):
        if url not in credentials:
            continue
        if not credentials[url]:
            return f"no storage token for {url.split('/')[2]}"
        context.cred_set(url, gfal2.cred_new("BEARER", credentials[url]))
    return ""


def copy_one(context: Any, item: dict[str, Any], credentials: dict[str, Any]) -> tuple[str, str]:
    missing = present_tokens(context, item, credentials)
    if missing:
        return jobs.FAILED, missing
    params = context.transfer_parameters()
    params.overwrite = True
    params.create_parent = True
    params.timeout = COPY_TIMEOUT_S
    if item.get("adler32"):
        params.set_checksum(gfal2.checksum_mode.target, "ADLER32", item["adler32"])
    try:
        context.filecopy(params, item["src"], item["dst"])
    except gfal2.GError as exc:
        return jobs.FAILED, f"gfal2: {exc.message} (code {exc.code})"
    return jobs.DONE, ""


def run(job_id: str, credentials: dict[str, Any]) -> int:
    job = jobs.read_job(job_id)
    if job is None:
        return 1
    job["state"] = jobs.ACTIVE
    job["pid"] = os.getpid()
    job["started_at"] = time.time()
    jobs.write_job(job)
    record = threading.Lock()
    contexts = threading.local()

    def copy(item: dict[str, Any]) -> None:
        if not hasattr(contexts, "gfal2"):
            contexts.gfal2 = gfal2.creat_context()
            # Endpoints here hold no X.509 proxy to delegate: credential-less HTTP TPC.
            contexts.gfal2.set_opt_boolean("HTTP PLUGIN", "RETRIEVE_BEARER_TOKEN", False)
        started = time.time()
        state, reason = copy_one(contexts.gfal2, item, credentials)
        with record:  # the poller reads each copy's result as soon as it is written
            item.update(state=state, reason=reason, started_at=started, finished_at=time.time())
            jobs.write_job(job)

    with ThreadPoolExecutor(max_workers=min(STREAMS, len(job["files"]) or 1)) as pool:
        list(pool.map(copy, job["files"]))
    failed = [f for f in job["files"] if f["state"] != jobs.DONE]
    job["state"] = jobs.FAILED if failed else jobs.DONE
    jobs.write_job(job)
    return 0 if not failed else 2


def read_credentials() -> dict[str, Any]:
    """The tokens the submitter wrote to standard input: {url: token or null}."""
    text = sys.stdin.read()
    return dict(json.loads(text)) if text.strip() else {}


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], read_credentials()))
