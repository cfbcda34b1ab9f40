"""The composed checks drive Rucio like the data-management ones, and push commits like the
pipeline ones: the same fixtures."""

from testbeds.checks.data_management.conftest import client, rucio, tokens
from testbeds.checks.pipelines.conftest import (
    buildbot_logs,
    ci_curl_config,
    developer,
    git_base,
    mlflow,
    mlflow_base,
    pipelines_of,
    push,
    registry,
    service,
)

__all__ = [
    "buildbot_logs",
    "ci_curl_config",
    "client",
    "developer",
    "git_base",
    "mlflow",
    "mlflow_base",
    "pipelines_of",
    "push",
    "registry",
    "rucio",
    "service",
    "tokens",
]
