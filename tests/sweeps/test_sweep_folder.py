"""A sweep's jobs find their parent run without the launching process's environment, as on
Hydra's RQ or Ray launchers or SLURM with `--export=NONE`: through a file in the sweep folder."""

import numpy as np
import pytest

from gatelab.sweeps.sweep_folder import (
    PARENT_RUN_ENV,
    PARENT_RUN_FILE,
    SweepArrays,
    parent_run_id,
    record_parent_run_id,
)
from tests.helpers import QUICK, runs_of, summary_rows
from tests.helpers import run_train as train


def test_a_job_reads_its_parent_from_the_sweep_folder_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(PARENT_RUN_ENV, raising=False)
    sweep_dir = tmp_path / "multirun" / "2026-01-01" / "00-00-00"
    assert parent_run_id(sweep_dir) is None
    record_parent_run_id(sweep_dir, "0123abcd")
    assert (sweep_dir / PARENT_RUN_FILE).read_text() == "0123abcd\n"
    assert parent_run_id(sweep_dir) == "0123abcd"
    assert parent_run_id(tmp_path / "another_sweep") is None


def test_a_sweepers_arrays_reach_the_summary_through_the_sweep_folder(tmp_path):
    assert SweepArrays.load(tmp_path) == SweepArrays()
    curves = {"run-a": np.array([0.3, 0.2], np.float32), "run-b": np.array([0.5], np.float32)}
    boundary = {"outputs": np.zeros((3, 3), np.float16), "inputs": np.eye(2)}
    group = {"run_ids": np.array(["run-a", "run-b"]), "dense/kernel": np.ones((2, 2, 2))}
    SweepArrays(losses=curves, boundaries={"run-a": boundary}, members={"0": group}).save(tmp_path)
    read = SweepArrays.load(tmp_path)
    assert sorted(read.losses) == ["run-a", "run-b"]
    for run_id, curve in curves.items():
        np.testing.assert_array_equal(read.losses[run_id], curve)
    assert sorted(read.boundaries["run-a"]) == ["inputs", "outputs"]
    np.testing.assert_array_equal(read.boundaries["run-a"]["outputs"], boundary["outputs"])
    np.testing.assert_array_equal(read.members["0"]["dense/kernel"], group["dense/kernel"])
    assert list(read.members["0"]["run_ids"]) == ["run-a", "run-b"]


@pytest.mark.slow
def test_jobs_in_their_own_processes_without_the_variable_are_children_of_the_sweep(tmp_path):
    # Each submitit_local job is its own process, as on SLURM; Hydra empties the variable for
    # the jobs (hydra.job.env_set), so only the sweep folder can tell them their parent.
    result = train(
        tmp_path,
        "-m",
        "hydra/launcher=submitit_local",
        f"++hydra.job.env_set.{PARENT_RUN_ENV}=''",
        "seed=1,2",
        *QUICK,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _, (parent,), children = runs_of(tmp_path)
    assert len(children) == 2
    assert {child.data.tags.get("mlflow.parentRunId") for child in children} == {parent.info.run_id}
    assert parent.data.metrics["jobs"] == 2
    assert sorted(row["seed"] for row in summary_rows(tmp_path)) == ["1", "2"]
