"""Resume instead of rework: a sweep re-run with `hydra.sweep.dir=<its folder>` finishes what an
earlier run of it did not, under the same parent, each job once."""

import os
import signal

import pytest
from mlflow.entities import RunStatus

from gatelab.sweeps.own_experiment import POINTER_TAG
from tests.helpers import (
    QUICK,
    runs_of,
    statuses_in_a_copy_of_the_store_file,
    stopped_once_written,
    summary_rows,
)
from tests.helpers import run_train as train

VECTORIZED = "hydra/sweeper=vectorized"
KILLED = RunStatus.to_string(RunStatus.KILLED)
# Each test's store made already in tmp_path (resuming, not creating a store, is tested here).
pytestmark = pytest.mark.usefixtures("tracking_uri")


def pointers_to(client, run_id: str) -> list:
    base = client.get_experiment_by_name("gatelab")
    return client.search_runs([base.experiment_id], f'tags.`{POINTER_TAG}` = "{run_id}"')


def by_job(jobs) -> dict[int, object]:
    numbers = [int(job.data.tags["hydra.job.num"]) for job in jobs]
    assert len(numbers) == len(set(numbers)), "a job has two runs"
    return dict(zip(numbers, jobs, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("sweeper", [[], [VECTORIZED]], ids=["basic", "vectorized"])
def test_a_resumed_sweep_runs_only_the_jobs_not_finished(tmp_path, sweeper):
    folder = tmp_path / "the_sweep"
    # An experiment of its own: the run pointing to it from `gatelab` ends as the sweep does.
    own = "tracking.own_experiment_above=3"
    command = ["-m", *sweeper, "seed=range(4)", *QUICK, f"hydra.sweep.dir={folder}", own]
    first = train(tmp_path, *command)
    assert first.returncode == 0, first.stderr[-3000:]
    client, (parent,), jobs = runs_of(tmp_path)
    (pointer,) = pointers_to(client, parent.info.run_id)
    assert pointer.info.status == parent.info.status == "FINISHED"
    before = by_job(jobs)
    # As a stop would leave it: job 1 KILLED, job 2 never written, the parent (and the run
    # pointing to it) KILLED.
    client.set_terminated(before[1].info.run_id, KILLED)
    client.delete_run(before[2].info.run_id)
    client.set_terminated(parent.info.run_id, KILLED)
    client.set_terminated(pointer.info.run_id, KILLED)

    second = train(tmp_path, *command)
    assert second.returncode == 0, second.stderr[-3000:]
    output = second.stdout + second.stderr
    assert (
        f"resuming sweep {parent.info.run_id} in {folder}: 2 job(s) finished earlier are "
        "skipped; 1 unfinished run(s) are replaced"
    ) in output
    client, (resumed,), jobs = runs_of(tmp_path)
    after = by_job(jobs)
    assert resumed.info.run_id == parent.info.run_id and resumed.info.status == "FINISHED"
    (pointed,) = pointers_to(client, parent.info.run_id)
    assert pointed.info.run_id == pointer.info.run_id and pointed.info.status == "FINISHED"
    assert sorted(after) == [0, 1, 2, 3]
    assert all(job.info.status == "FINISHED" for job in jobs)
    # The finished jobs kept their runs; the others ran again, under the same parent.
    assert after[0].info.run_id == before[0].info.run_id
    assert after[3].info.run_id == before[3].info.run_id
    assert after[1].info.run_id != before[1].info.run_id
    assert {job.data.tags["gatelab.sweep"] for job in jobs} == {parent.info.run_id}
    # Retrained from the same seed: the same result as the first time.
    assert after[1].data.metrics["loss"] == pytest.approx(before[1].data.metrics["loss"])
    assert sorted(int(row["job"]) for row in summary_rows(tmp_path, folder)) == [0, 1, 2, 3]


@pytest.mark.slow
def test_a_folder_holding_a_sweep_of_other_overrides_is_refused(tmp_path):
    folder = tmp_path / "the_sweep"
    first = train(tmp_path, "-m", "seed=1,2", *QUICK, f"hydra.sweep.dir={folder}")
    assert first.returncode == 0, first.stderr[-3000:]
    summary = (folder / "sweep_summary.csv").read_text()
    second = train(tmp_path, "-m", "seed=3,4", *QUICK, f"hydra.sweep.dir={folder}")
    assert second.returncode == 2
    client, (parent,), jobs = runs_of(tmp_path)
    assert second.stderr.splitlines()[-1] == (
        f"error: hydra.sweep.dir={folder} holds sweep {parent.info.run_id} of other overrides "
        "(seed=1,2 trainer.epochs=300 trainer.print_every=0); re-run that sweep's command to "
        "finish it, or give this sweep a folder of its own"
    )
    # The first sweep's folder and runs are as it left them; the second made none.
    assert (folder / "sweep_summary.csv").read_text() == summary
    assert parent.info.status == "FINISHED"
    assert sorted(job.data.params["seed"] for job in jobs) == ["1", "2"]


@pytest.mark.slow
def test_a_vectorized_sweep_stopped_while_writing_ends_killed_and_resumes(tmp_path):
    folder = tmp_path / "the_sweep"
    # 50 children a transaction (500 by default): 20 transactions, the stop after the 4th.
    command = [
        "-m",
        VECTORIZED,
        "seed=range(1000)",
        *QUICK,
        "hydra.sweeper.runs_per_transaction=50",
        f"hydra.sweep.dir={folder}",
    ]
    # Once the parent and 200 children are written.
    returncode, output, seconds = stopped_once_written(tmp_path, command, 201, signal.SIGTERM)
    # A stop is acted on in seconds (3 s measured here), before the writing ends.
    assert seconds < 30, f"{seconds:.1f} s from SIGTERM to exit"
    assert returncode == 143, output
    client, (parent,), jobs = runs_of(tmp_path)
    assert parent.info.status == "KILLED"
    assert "RUNNING" not in {job.info.status for job in jobs}
    recorded = sum(job.info.status == "FINISHED" for job in jobs)
    assert 0 < recorded < 1000
    # The SQL bulk writer's transactions are whole: none of a batch, or all of it.
    assert recorded % 50 == 0 and len(jobs) == recorded
    assert f"stopped: {recorded} of 1000 jobs recorded; to finish the rest" in output
    assert "Traceback" not in output and "FAILED" not in parent.info.status
    # Every child's folder exists.
    assert all(os.path.isdir(job.data.tags["hydra.output_dir"]) for job in jobs)

    resumed = train(tmp_path, *command)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{recorded} job(s) finished earlier are skipped" in resumed.stdout + resumed.stderr
    client, (again,), jobs = runs_of(tmp_path)
    assert again.info.run_id == parent.info.run_id and again.info.status == "FINISHED"
    assert sorted(by_job(jobs)) == list(range(1000))
    assert {job.info.status for job in jobs} == {"FINISHED"}
    assert len(summary_rows(tmp_path, folder)) == 1000
    copied = statuses_in_a_copy_of_the_store_file(tmp_path, tmp_path / "copy")
    assert "RUNNING" not in copied.values()
