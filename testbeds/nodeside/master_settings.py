"""This testbed's values for its Buildbot master, as the buildbot_master role renders them
(wp5-master.json beside master.cfg). Standard library only: read on the master's node."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Settings:
    """This testbed's values (the role renders them as JSON beside master.cfg)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.secrets_dir = Path(values["secrets_dir"])
        self.pb_port = int(values["pb_port"])
        self.change_user = str(values["change_user"])
        # Worker name -> GPUs on its node, from the definition's traits.
        self.workers: dict[str, int] = {k: int(v) for k, v in values["workers"].items()}
        # Workers on the cluster's login nodes: they take HPC jobs alone, as Slurm jobs.
        self.hpc_workers = sorted(values.get("hpc_workers") or [])
        self.job_timeout_s = int(values["job_timeout_s"])
        self.job_path = str(values["job_path"])
        self.registry = str(values["registry"])
        self.registry_user = str(values["registry_user"])
        self.mlflow_url = str(values["mlflow_url"])
        self.mlflow_user = str(values["mlflow_user"])
        self.mlflow_ca_file = str(values["mlflow_ca_file"])

    @property
    def gpu_workers(self) -> list[str]:
        return sorted(n for n, gpus in self._job_workers.items() if gpus > 0)

    @property
    def cpu_workers(self) -> list[str]:
        workers = self._job_workers
        return sorted(n for n, gpus in workers.items() if gpus == 0) or sorted(workers)

    @property
    def _job_workers(self) -> dict[str, int]:
        return {n: gpus for n, gpus in self.workers.items() if n not in self.hpc_workers}

    def secret(self, name: str) -> str:
        return (self.secrets_dir / name).read_text().strip()
