"""Stopping a run or a sweep (Ctrl-C, `kill`, a SLURM time limit) leaves no MLflow run RUNNING."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from tests.conftest import PYTHON, TRAIN_SCRIPT

pytestmark = pytest.mark.slow

# Long enough (a few seconds of training) to be stopped while training.
LONG = ["trainer.epochs=1000000", "trainer.print_every=0"]


def runs_in(workdir: Path) -> list[Run]:
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("gatelab")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def start_and_terminate(workdir: Path, *arguments: str) -> subprocess.CompletedProcess:
    """Start `src/train.py ARGUMENTS`, send SIGTERM once a training run is RUNNING, and wait."""
    environment = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    process = subprocess.Popen(
        [PYTHON, str(TRAIN_SCRIPT), *arguments],
        cwd=workdir,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not any(
        run.info.status == "RUNNING" and "sweep.params" not in run.data.tags
        for run in runs_in(workdir)
    ):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no training run started"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_a_terminated_run_ends_killed(tmp_path):
    result = start_and_terminate(tmp_path, *LONG)
    assert result.returncode != 0
    (run,) = runs_in(tmp_path)
    assert run.info.status == "KILLED"


def test_a_terminated_sweep_is_summarised_and_its_parent_and_job_end_killed(tmp_path):
    result = start_and_terminate(tmp_path, "-m", "seed=0,1", *LONG)
    assert result.returncode != 0
    runs = runs_in(tmp_path)
    (parent,) = [run for run in runs if "sweep.params" in run.data.tags]
    children = [run for run in runs if "sweep.params" not in run.data.tags]
    assert parent.info.status == "KILLED"
    # The second job never started: Hydra's basic launcher stops at the first interruption.
    assert [child.info.status for child in children] == ["KILLED"]
    (summary,) = tmp_path.glob("multirun/*/*/sweep_summary.csv")
    assert "KILLED" in summary.read_text()


def test_a_terminated_joblib_sweep_leaves_no_job_running(tmp_path):
    result = start_and_terminate(
        tmp_path, "-m", "seed=0,1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *LONG
    )
    assert result.returncode != 0
    runs = runs_in(tmp_path)
    (parent,) = [run for run in runs if "sweep.params" in run.data.tags]
    children = [run for run in runs if "sweep.params" not in run.data.tags]
    assert parent.info.status == "KILLED"
    assert children
    assert {child.info.status for child in children} == {"KILLED"}
