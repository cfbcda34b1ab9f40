"""Run one transfer job: a gfal2 third-party copy per file, checksums verified end to end.

The expected adler32 is the catalogue's: gfal2 compares it with the checksum the source
reports before copying and the destination reports after, so a corrupted source or a
damaged copy fails the transfer instead of being registered as a good replica.

Where the endpoints take storage tokens, each copy carries two, asked for with the Rucio
host's client credentials: one to read the source (for the source's audience), one to
write the destination (for its own); gfal2 hands the source's to the destination in the
HTTP COPY request, as FTS3 does.

When a copy ends, the worker reports it to Rucio at once, as FTS3's completion messages
reach Rucio's receiver daemon; the poller remains the fallback for a worker that died.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import gfal2
from rucio.core import request as request_core
from rucio.core import transfer as transfer_core

from wp5_rucio import jobs, tokens
from wp5_rucio.transfertool import Gfal2TransferStatusReport

COPY_TIMEOUT_S = 600


READ_SCOPES = ["storage.read"]
WRITE_SCOPES = ["storage.read", "storage.create", "storage.modify"]


def present_tokens(context: Any, item: dict[str, Any]) -> str:
    """Give gfal2 a token for each end of the copy; an error message if one is missing."""
    from rucio.core.rse import determine_scope_for_rse, get_rse_attribute

    for url, rse_id, scopes in (
        (item["src"], item["src_rse_id"], READ_SCOPES),
        (item["dst"], item["dst_rse_id"], WRITE_SCOPES),
    ):
        if not url.startswith("davs://") or get_rse_attribute(rse_id, "oidc_support") is not True:
            continue
        audience = tokens.determine_audience_for_rse(rse_id)
        token = tokens.request_token(audience, determine_scope_for_rse(rse_id, scopes=scopes))
        if token is None:
            return f"no storage token for {audience}"
        context.cred_set(url, gfal2.cred_new("BEARER", token))
    return ""


def copy_one(context: Any, item: dict[str, Any]) -> tuple[str, str]:
    missing = present_tokens(context, item)
    if missing:
        return jobs.FAILED, missing
    params = context.transfer_parameters()
    params.overwrite = True
    params.create_parent = True
    params.timeout = COPY_TIMEOUT_S
    if item.get("adler32"):
        params.set_checksum(gfal2.checksum_mode.both, "ADLER32", item["adler32"])
    try:
        context.filecopy(params, item["src"], item["dst"])
    except gfal2.GError as exc:
        return jobs.FAILED, f"gfal2: {exc.message} (code {exc.code})"
    return jobs.DONE, ""


def run(job_id: str) -> int:
    job = jobs.read_job(job_id)
    if job is None:
        return 1
    job["state"] = jobs.ACTIVE
    job["started_at"] = time.time()
    jobs.write_job(job)
    context = gfal2.creat_context()
    # Endpoints here hold no X.509 proxy to delegate: ask for credential-less HTTP TPC.
    context.set_opt_boolean("HTTP PLUGIN", "RETRIEVE_BEARER_TOKEN", False)
    for item in job["files"]:
        item["state"], item["reason"] = copy_one(context, item)
        item["finished_at"] = time.time()
        jobs.write_job(job)
    failed = [f for f in job["files"] if f["state"] != jobs.DONE]
    job["state"] = jobs.FAILED if failed else jobs.DONE
    jobs.write_job(job)
    report_to_rucio(job)
    return 0 if not failed else 2


def report_to_rucio(job: dict[str, Any]) -> None:
    with request_core.TransferStatsManager() as stats:
        for item in job["files"]:
            transfer_core.update_transfer_state(
                tt_status_report=Gfal2TransferStatusReport(item["request_id"], job, item),
                stats_manager=stats,
            )


if __name__ == "__main__":
    sys.exit(run(sys.argv[1]))
