"""This testbed's values for its Buildbot master, as the buildbot_master role renders them
(wp5-master.json beside master.cfg). Standard library only: read on the master's node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testbeds.nodeside.datalake_tokens import DatalakeClient, Issuer


class Settings:
    """This testbed's values (the role renders them as JSON beside master.cfg)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.secrets_dir = Path(values["secrets_dir"])
        self.pb_port = int(values["pb_port"])
        self.tls_cert = str(values["tls_cert"])
        self.tls_key = str(values["tls_key"])
        self.change_user = str(values["change_user"])
        # Worker name -> GPUs on its node, from the definition's traits.
        self.workers: dict[str, int] = {k: int(v) for k, v in values["workers"].items()}
        # Workers on the cluster's login nodes: they take HPC jobs alone, as Slurm jobs.
        self.hpc_workers = sorted(values.get("hpc_workers") or [])
        self.job_timeout_s = int(values["job_timeout_s"])
        self.job_path = str(values["job_path"])
        # What CI workers run a job's command through (as the jobs' own account).
        self.job_runner = str(values["job_runner"])
        self.registry = str(values["registry"])
        # The registry's log of accepted pushes (role container_registry), on this node.
        self.push_log = str(values["push_log"])
        self.mlflow_url = str(values["mlflow_url"])
        # Each job's own credential for the registry and MLflow (job_tokens.py).
        self.job_tokens_dir = Path(values["job_tokens_dir"])
        self.job_token_lifetime_s = int(values["job_token_lifetime_s"])
        self.mlflow_ca_file = str(values["mlflow_ca_file"])
        # Where the instance has a token issuer: each repository's client for its HPC jobs'
        # datalake tokens, its project's (datalake_tokens.py); none otherwise.
        datalake = values.get("datalake") or {}
        self.token_issuer = (
            Issuer(str(datalake["issuer_url"]), str(datalake["ca_file"]))
            if datalake.get("issuer_url")
            else None
        )
        self.datalake_clients: dict[str, DatalakeClient] = {
            str(repository): DatalakeClient(
                project=str(client["project"]),
                name=str(client["name"]),
                secret_file=self.secrets_dir / f"issuer-{client['name']}",
                scopes=tuple(str(s) for s in client["scopes"]),
                audiences=tuple(str(a) for a in client["audiences"]),
            )
            for repository, client in (datalake.get("clients") or {}).items()
        }

    @property
    def pb_endpoint(self) -> str:
        """Twisted's server endpoint for the worker port: TLS with the host certificate."""
        return f"ssl:{self.pb_port}:privateKey={self.tls_key}:certKey={self.tls_cert}"

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
