# Run as a cell in the analysis kernel of the user's notebook server (itself a Slurm job):
# a Dask cluster whose workers are Slurm jobs computes per-key sums and counts over the
# sample dataset, then closes. Prints one line starting with RESULT and a JSON object.
import json
import time

import dask.dataframe as dd
from dask.distributed import Client
from dask_jobqueue import SLURMCluster
from distributed.security import Security

DATASET = "__DATASET__"  # filled in by the check
WORKERS = int("__WORKERS__")

began = time.monotonic()
# A walltime shorter than what is left of the notebook's own job: Slurm's backfill can then
# start the workers beside a job that waits for whole nodes (another lane's MPI job waits for
# the CPU this notebook holds; without a short limit the workers would queue behind it
# until the notebook ends, and the notebook waits for them).
cluster = SLURMCluster(security=True, walltime="00:15:00")
cluster.scale(jobs=WORKERS)
client = Client(cluster)
# The workers are Slurm jobs: they may queue behind other users' jobs (other checks run
# side by side on the same partition) before they start.
client.wait_for_workers(WORKERS, timeout=int("__WORKERS_WAIT_S__"))
started_s = time.monotonic() - began
workers = client.scheduler_info()["workers"].values()
job_ids = sorted(job.job_id for job in cluster.workers.values())


def refused(address, security):
    try:
        Client(address, security=security, timeout=5).close()
    except Exception:
        return True
    return False


address = cluster.scheduler_address
began = time.monotonic()
frame = dd.read_parquet(DATASET)
sums = frame.groupby("key").value.agg(["sum", "count"]).compute()
compute_s = time.monotonic() - began
result = {
    "scheduler": address,
    "jobs": job_ids,
    "worker_hosts": sorted(w["host"] for w in workers),
    "worker_memory_limit": max(w["memory_limit"] for w in workers),
    "partitions": frame.npartitions,
    "per_key": {str(k): [int(r["sum"]), int(r["count"])] for k, r in sums.iterrows()},
    "started_s": round(started_s, 1),
    "compute_s": round(compute_s, 1),
    # Plaintext, and TLS with another cluster's keys: the scheduler must refuse both.
    "plain_tcp_refused": refused(
        address.replace("tls://", "tcp://"), Security(require_encryption=False)
    ),
    "other_keys_refused": refused(address, Security.temporary()),
}
client.close()
cluster.close()
print("RESULT " + json.dumps(result))
