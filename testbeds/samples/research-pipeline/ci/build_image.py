"""Package the model trained from this commit as an OCI image and push it to the testbed
registry, tagged with the commit hash. The model comes from the tracking server's artifact
store, so this job may run on a different worker from the one that trained it.

With buildah (the testbed's CI workers) the image is built and pushed by buildah; where
buildah cannot run (a restricted Kubernetes pod has no user namespaces) crane appends
the model layer to an empty image and sets the labels in the registry directly."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient


def buildah(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        ["buildah", *args], input=stdin, check=True, capture_output=True, text=True
    ).stdout.strip()


def crane(*args: str, stdin: str | None = None) -> str:
    insecure = ["--insecure"] if os.environ.get("CI_REGISTRY_INSECURE") == "true" else []
    return subprocess.run(
        ["crane", *insecure, *args], input=stdin, check=True, capture_output=True, text=True
    ).stdout.strip()


def build_with_buildah(model: Path, image: str, labels: list[str], registry: str, tmp: str) -> None:
    os.environ["REGISTRY_AUTH_FILE"] = str(Path(tmp, "auth.json"))
    buildah(
        "login",
        "--username",
        os.environ["CI_REGISTRY_USER"],
        "--password-stdin",
        registry,
        stdin=os.environ["CI_REGISTRY_PASSWORD"],
    )
    container = buildah("from", "scratch")
    try:
        buildah("copy", container, str(model), "/model/model.json")
        for label in labels:
            buildah("config", "--label", label, container)
        buildah("commit", "--quiet", container, image)
    finally:
        buildah("rm", container)
    buildah("push", "--quiet", image, f"docker://{image}")
    buildah("rmi", image)


def build_with_crane(model: Path, image: str, labels: list[str], registry: str, tmp: str) -> None:
    os.environ["DOCKER_CONFIG"] = tmp
    crane(
        "auth",
        "login",
        registry,
        "--username",
        os.environ["CI_REGISTRY_USER"],
        "--password-stdin",
        stdin=os.environ["CI_REGISTRY_PASSWORD"],
    )
    layer = Path(tmp, "layer.tar")
    with tarfile.open(layer, "w") as tar:
        tar.add(model, arcname="model/model.json")
    crane("append", "--new_layer", str(layer), "--new_tag", image)
    crane("mutate", image, "--tag", image, *(arg for label in labels for arg in ("--label", label)))


def main() -> None:
    commit = os.environ["CI_COMMIT_SHA"]
    registry = os.environ["CI_REGISTRY"]
    image = f"{registry}/{os.environ.get('CI_PROJECT', 'research-pipeline')}/model:{commit}"
    client = MlflowClient()
    experiment = client.get_experiment_by_name(os.environ.get("CI_PROJECT", "research-pipeline"))
    if experiment is None:
        raise SystemExit("no experiment on the tracking server: did the train job run?")
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.git_commit = '{commit}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise SystemExit(f"no training run for commit {commit} on the tracking server")
    run = runs[0]

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="model", dst_path=tmp
        )
        labels = [
            f"org.opencontainers.image.revision={commit}",
            f"org.opencontainers.image.source={os.environ.get('CI_REPOSITORY', '')}",
            f"io.wp5-testbeds.mlflow-run={run.info.run_id}",
        ]
        build = build_with_buildah if shutil.which("buildah") else build_with_crane
        build(Path(model_dir, "model.json"), image, labels, registry, tmp)
    client.set_tag(run.info.run_id, "image", image)
    print(f"pushed {image} (model of run {run.info.run_id})")


if __name__ == "__main__":
    main()
