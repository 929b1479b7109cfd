"""Many finished runs written at once, by this process or by spawned writer processes."""

import json
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from gatelab.tracking import writer
from gatelab.tracking.experiment import configure, every_run
from gatelab.tracking.records import SWEEP_TAG, RunRecord
from tests.helpers import QUICK, is_cell, mlflow_server, start_train


def records(count: int, sweep: str = "a-sweep") -> list[RunRecord]:
    return [
        RunRecord(
            job_number=number,
            name=f"seed={number}",
            tags={"hydra.job.num": str(number), SWEEP_TAG: sweep},
            params={"seed": str(number), "optimizer.learning_rate": "0.5"},
            loss_points=[(step, 1.0 / (step + number + 1)) for step in range(3)],
            outcome={"solved": float(number % 2)},
            weights={"output": {"bias": [float(number)]}},
            status="FAILED" if number == 3 else "FINISHED",
        )
        for number in range(count)
    ]


@pytest.mark.parametrize("writers", [1, 2])
def test_every_record_becomes_the_run_it_describes(tracking_uri, writers):
    experiment_id = configure(tracking_uri, "bulk")
    written = {}
    wanted = records(60)
    run_ids = writer.write_all(experiment_id, wanted, on_written=written.update, writers=writers)
    assert written == run_ids
    assert sorted(run_ids) == list(range(60))
    assert len(set(run_ids.values())) == 60
    client = MlflowClient(tracking_uri)
    for record in wanted:
        run = client.get_run(run_ids[record.job_number])
        assert run.info.run_name == record.name
        assert run.info.status == record.status
        assert run.data.params == record.params
        assert run.data.tags["hydra.job.num"] == str(record.job_number)
        assert json.loads(run.data.tags["weights"]) == record.weights
        assert run.data.metrics["solved"] == record.job_number % 2
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [(point.step, point.value) for point in history] == record.loss_points


@pytest.mark.parametrize("writers", [1, 2])
def test_a_record_mlflow_refuses_stops_the_writing_and_leaves_nothing_running(
    tracking_uri, writers
):
    experiment_id = configure(tracking_uri, "bulk")
    wanted = records(40)
    # MLflow refuses a `?` in a metric's name.
    wanted[20] = RunRecord(job_number=20, name="refused", tags={}, params={}, outcome={"a?": 1.0})
    with pytest.raises(MlflowException, match="a\\?"):
        writer.write_all(experiment_id, wanted, writers=writers)
    runs = mlflow.search_runs([experiment_id], output_format="list")
    statuses = {run.info.run_name: run.info.status for run in runs}
    assert statuses["refused"] == "KILLED"
    assert "RUNNING" not in statuses.values()
    # One chunk at a time per writer: what was not started yet was not written.
    assert len(runs) < 40


def kill_the_first_writer_once_started() -> Callable[[], list[int]]:
    """Kill (SIGKILL, as the kernel's OOM killer) the first writer process as soon as it exists,
    before it has written anything; return a wait for the pid killed."""
    known = set(multiprocessing.active_children())
    killed: list[int] = []

    def kill() -> None:
        while not killed:
            started = set(multiprocessing.active_children()) - known
            if started:
                killed.append(started.pop().pid)
                os.kill(killed[0], signal.SIGKILL)
            else:
                time.sleep(0.01)  # polled: a writer appears within seconds of the first submit

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()

    def wait() -> list[int]:
        thread.join()
        return killed

    return wait


@pytest.mark.parametrize("when", ["after its first chunk", "before it wrote anything"])
def test_the_runs_of_a_writer_killed_mid_write_are_written_again(tracking_uri, when):
    experiment_id = configure(tracking_uri, "bulk")
    wanted = records(600)
    killed: list[int] = []
    calls: list[dict[int, str]] = []
    waited = kill_the_first_writer_once_started() if when != "after its first chunk" else None

    def kill_a_writer(written: dict[int, str]) -> None:
        calls.append(dict(written))
        # The first call is the run written before the writers start; the second, a chunk's.
        if not killed and waited is None and len(calls) == 2:
            killed.append(multiprocessing.active_children()[0].pid)
            os.kill(killed[0], signal.SIGKILL)

    run_ids = writer.write_all(experiment_id, wanted, on_written=kill_a_writer, writers=2)
    if waited is not None:
        killed += waited()
    assert killed
    assert sorted(run_ids) == list(range(600))
    # The writer's contract: `on_written` is told run ids, never nothing, and each job once.
    assert all(calls)
    told = [number for written in calls for number in written]
    assert sorted(told) == list(range(600))
    assert {number: run_id for written in calls for number, run_id in written.items()} == run_ids
    runs = mlflow.search_runs([experiment_id], output_format="list", max_results=5000)
    # Each job once, whole, ended as its record says (no RUNNING, no KILLED): what the dead
    # writer began is deleted and written again.
    numbers = sorted(int(run.data.tags["hydra.job.num"]) for run in runs)
    assert numbers == list(range(600))
    assert {run.info.run_id for run in runs} == set(run_ids.values())
    status_of = {record.job_number: record.status for record in wanted}
    assert all(run.info.status == status_of[int(run.data.tags["hydra.job.num"])] for run in runs)
    assert all(run.data.params for run in runs)


def writer_processes(pid: int) -> list[int]:
    """The writer processes `pid` has spawned (`multiprocessing`'s spawn, not its tracker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:
                continue  # gone already
            if b"spawn_main" in command:
                found.append(int(child))
    return found


@pytest.mark.slow
def test_a_vectorized_sweep_whose_writer_is_killed_records_every_job(tmp_path, store_template):
    # Against a server, the fewest jobs whose children spawned writer processes write.
    jobs = writer.PARALLEL_FROM
    (tmp_path / "server").mkdir()
    with mlflow_server(tmp_path / "server", store_template=store_template) as server_uri:
        process = start_train(
            tmp_path,
            "-m",
            "hydra/sweeper=vectorized",
            f"seed=range({jobs})",
            f"tracking.uri={server_uri}",
            *QUICK,
            tracking_uri=None,
            merge_output=True,
            new_session=True,
        )
        killed = None
        while killed is None and process.poll() is None:
            # SIGKILL (the kernel's OOM killer) of the first writer as soon as it is there,
            # before it returned a chunk: the sweep then had no child logged yet.
            writers = writer_processes(process.pid)
            if writers:
                killed = writers[0]
                os.kill(killed, signal.SIGKILL)
            else:
                time.sleep(0.05)  # polled: the writers start once the population trained
        output = process.communicate(timeout=900)[0]
        assert killed is not None, output[-3000:]
        assert process.returncode == 0, output[-3000:]
        assert "Traceback" not in output
        assert "a writer process died" in output
        client = MlflowClient(server_uri)
        # A sweep of more than 100 jobs has an experiment of its own.
        runs = [
            run
            for experiment in client.search_experiments()
            for run in every_run(client, experiment.experiment_id)
        ]
    (parent,) = [run for run in runs if "sweep.params" in run.data.tags]
    children = [
        run
        for run in runs
        if run.data.tags.get(SWEEP_TAG) == parent.info.run_id and not is_cell(run)
    ]
    assert parent.info.status == "FINISHED"
    assert sorted(int(run.data.tags["hydra.job.num"]) for run in children) == list(range(jobs))
    assert {run.info.status for run in children} == {"FINISHED"}
