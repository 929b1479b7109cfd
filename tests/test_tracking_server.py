"""The same code against an MLflow tracking server: runs go through its REST API, not a file."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import PYTHON, TRAIN_SCRIPT

pytestmark = pytest.mark.slow

QUICK = ["trainer.epochs=300", "trainer.print_every=0"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on localhost with its own store, proxying artifacts, for this module."""
    directory = tmp_path_factory.mktemp("server")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    mlflow_command = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen(
        [
            str(mlflow_command),
            "server",
            "--backend-store-uri",
            f"sqlite:///{directory / 'mlflow.db'}",
            "--artifacts-destination",
            str(directory / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, "mlflow server exited"
            assert time.monotonic() < deadline, "mlflow server did not come up"
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def test_a_sweep_against_a_tracking_server_logs_as_to_a_local_store(server_uri, tmp_path):
    environment = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    result = subprocess.run(
        [PYTHON, str(TRAIN_SCRIPT), "-m", "seed=1,2", f"tracking.uri={server_uri}", *QUICK],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"open {server_uri}" in result.stdout + result.stderr
    # Nothing was written beside the job: the server holds the store and the artifacts.
    assert not (tmp_path / "mlflow.db").exists()

    client = MlflowClient(server_uri)
    experiment = client.get_experiment_by_name("gatelab")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [run for run in runs if "sweep.params" in run.data.tags]
    children = [run for run in runs if "sweep.params" not in run.data.tags]
    assert parent.info.status == "FINISHED"
    assert len(children) == 2
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        history = client.get_metric_history(child.info.run_id, "loss")
        assert sorted(metric.step for metric in history) == list(range(1, 301))
        names = {artifact.path for artifact in client.list_artifacts(child.info.run_id)}
        assert {"weights.json", "predictions.json", "loss_curve.png"} <= names
        assert client.search_logged_models(
            [experiment.experiment_id], filter_string=f"source_run_id = '{child.info.run_id}'"
        )
    parent_files = {artifact.path for artifact in client.list_artifacts(parent.info.run_id)}
    assert "sweep_summary.csv" in parent_files
