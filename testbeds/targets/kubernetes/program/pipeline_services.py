"""Names and ports of the pipelines testbed's services on Kubernetes, shared by the services
(pipelines.py) and the workflow jobs that reach them (workflow.py)."""

from __future__ import annotations

MLFLOW_PORT, MINIO_PORT, REGISTRY_PORT = 5000, 9000, 5000
# The account workflows run as; it may only report task results.
WORKFLOW_ACCOUNT = "wp5-pipeline"
# The user every pipeline pod and service runs as.
RUN_AS = 1000
# The account pipeline jobs log runs as; it owns the experiments it creates. Its password
# is the Secret MLFLOW_JOB_SECRET's `password`.
MLFLOW_JOB_USER = "ci"
MLFLOW_JOB_SECRET = "mlflow-ci"
REGISTRY_SECRET = "registry-credentials"
