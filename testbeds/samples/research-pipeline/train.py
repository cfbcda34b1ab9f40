"""Train the model on the repository's data and log everything to the tracking server:
parameters, metrics, the model, the commit it came from and the exact package versions."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import mlflow
from model import fit, load, rmse

PARAMS = {"seed": 20261125, "epochs": 40, "learning_rate": 0.01}
DATA = Path(__file__).with_name("data")


def main() -> None:
    commit = os.environ["CI_COMMIT_SHA"]
    x_train, y_train = load(DATA / "train.csv")
    x_test, y_test = load(DATA / "test.csv")
    weights = fit(x_train, y_train, **PARAMS)
    metrics = {
        "rmse_train": rmse(weights, x_train, y_train),
        "rmse_test": rmse(weights, x_test, y_test),
    }
    packages = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all"], check=True, capture_output=True, text=True
    ).stdout

    mlflow.set_experiment(os.environ.get("CI_PROJECT", "research-pipeline"))
    with mlflow.start_run(run_name=f"{os.environ.get('CI_BRANCH', 'local')}@{commit[:12]}") as run:
        mlflow.set_tags(
            {
                "git_commit": commit,
                "git_branch": os.environ.get("CI_BRANCH", ""),
                "ci_build": os.environ.get("CI_BUILD_URL", ""),
                "ci_worker": os.environ.get("CI_WORKER", platform.node()),
                "gpu": os.environ.get("CI_GPU", "none"),
                "python": platform.python_version(),
            }
        )
        mlflow.log_params(PARAMS)
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = Path(tmp, "model")
            model_dir.mkdir()
            model = {"weights": weights.tolist(), "commit": commit, "params": PARAMS}
            (model_dir / "model.json").write_text(json.dumps(model, indent=2))
            mlflow.log_artifacts(str(model_dir), artifact_path="model")
            Path(tmp, "requirements.lock").write_text(packages)
            mlflow.log_artifact(str(Path(tmp, "requirements.lock")), artifact_path="environment")
        print(f"run {run.info.run_id}: {json.dumps(metrics)}")


if __name__ == "__main__":
    main()
