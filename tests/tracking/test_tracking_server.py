"""The same code against an MLflow tracking server: runs go through its REST API, not a file."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import mlflow_server, run_train, start_train

pytestmark = pytest.mark.slow

QUICK = ["trainer.epochs=300", "trainer.print_every=0"]


@pytest.fixture(scope="module")
def server_uri(tmp_path_factory: pytest.TempPathFactory, store_template: Path) -> Iterator[str]:
    """`mlflow server` with its own SQLite store, proxying artifacts, for this module."""
    directory = tmp_path_factory.mktemp("server")
    with mlflow_server(directory, store_template=store_template) as uri:
        yield uri


def test_a_sweep_against_a_tracking_server_logs_as_to_a_local_store(server_uri, tmp_path):
    result = run_train(
        tmp_path,
        "-m",
        "seed=1,2",
        f"tracking.uri={server_uri}",
        *QUICK,
        tracking_uri=None,
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


def test_a_server_that_dies_during_a_run_is_one_line_and_exit_1(tmp_path, store_template):
    directory = tmp_path / "server"
    directory.mkdir()
    server = mlflow_server(directory, store_template=store_template)
    uri = server.__enter__()
    process = start_train(
        tmp_path, f"tracking.uri={uri}", "trainer.epochs=2500000", tracking_uri=uri
    )
    try:
        client = MlflowClient(uri)
        # The run is open on the server (training takes seconds): then the server dies.
        while not client.search_runs(["0", "1"], filter_string="attributes.status = 'RUNNING'"):
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)
    finally:
        server.__exit__(None, None, None)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stdout + stderr and "Retrying" not in stdout + stderr
    (line,) = [line for line in stderr.splitlines() if line.strip()]
    assert line.startswith(f"error: the tracking server at {uri} stopped answering during the run")
