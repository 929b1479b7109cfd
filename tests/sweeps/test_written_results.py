"""A sweep's summary from the results its process wrote (`results.hold`, `written_results`): the
same rows as the store's (`read_results`), and the store's whenever this process did not write
every job."""

import pytest
from mlflow.tracking import MlflowClient

from gatelab.sweeps.results import hold, read_results, written_results
from gatelab.sweeps.summary import JobResult
from gatelab.tracking.children import ClientChildStore, SqlChildStore
from gatelab.tracking.records import RunRecord
from tests.helpers import QUICK, SEEDS_BY_RATES, runs_of, summary_rows, sweep_children
from tests.helpers import run_train as train

SWEPT = ["seed", "optimizer.learning_rate"]
VECTORIZED = "hydra/sweeper=vectorized"


def exactly(results: list[JobResult] | None) -> list[str]:
    # Every field, floats to the last digit; NaN (a job that never trained) equal to NaN.
    assert results is not None
    return [repr(result) for result in results]


def written_by(store_class, tracking_uri: str) -> tuple[MlflowClient, str]:
    """The six `sweep_children` of a new parent, written by `store_class` and held as written."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("sweeps")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("sweeps")
    parent = client.create_run(experiment_id).info.run_id
    made = sweep_children(parent)
    record_of = {record.job_number: record for record in made}

    def on_written(run_ids: dict[int, str]) -> None:
        hold([(record_of[number], run_id) for number, run_id in run_ids.items()], SWEPT)

    store_class(tracking_uri).write_all(experiment_id, made, on_written=on_written)
    return client, parent


@pytest.mark.parametrize("store_class", [SqlChildStore, ClientChildStore])
def test_the_results_held_as_written_are_the_rows_the_store_reads_back(tracking_uri, store_class):
    client, parent = written_by(store_class, tracking_uri)
    stored = read_results(client, parent, SWEPT)
    held = written_results(parent, SWEPT, planned=6)
    assert exactly(held) == exactly(stored)
    # What the six cover: solved or not, one diverged, one refused before it trained.
    assert [result.status for result in held] == ["FINISHED"] * 4 + [
        "FAILED: diverged",
        "FAILED: error",
    ]
    assert [result.values for result in held][3] == {"seed": "3", "optimizer.learning_rate": "2.0"}
    assert {result.parent_run_id for result in held} == {parent}
    assert len({result.run_id for result in held}) == 6


def test_results_are_held_only_for_every_planned_job_of_the_same_keys_and_once(tracking_uri):
    _, parent = written_by(SqlChildStore, tracking_uri)
    assert len(exactly(written_results(parent, SWEPT, planned=6))) == 6
    # Asked for once, by the summary; then forgotten.
    assert written_results(parent, SWEPT, planned=6) is None
    # A seventh job this process did not write (a resumed sweep's, a shard's): the store's.
    _, parent = written_by(SqlChildStore, tracking_uri)
    assert written_results(parent, SWEPT, planned=7) is None
    # A sweep of other keys, or of a size Hydra's overrides do not tell: the store's.
    _, parent = written_by(SqlChildStore, tracking_uri)
    assert written_results(parent, ["seed"], planned=6) is None
    _, parent = written_by(SqlChildStore, tracking_uri)
    assert written_results(parent, SWEPT, planned=None) is None
    assert written_results("another sweep", SWEPT, planned=6) is None


def test_records_of_no_sweep_are_not_held():
    (record,) = [record for record in sweep_children("parent") if record.job_number == 0]
    alone = RunRecord(0, record.name, tags={}, params=record.params)
    hold([(alone, "run")], SWEPT)
    assert written_results("parent", SWEPT, planned=1) is None


@pytest.mark.slow
def test_a_vectorized_sweep_summarises_what_it_wrote_as_a_resumed_one_reads_the_store(tmp_path):
    folder = tmp_path / "the_sweep"
    command = ["-m", VECTORIZED, *SEEDS_BY_RATES, *QUICK, f"hydra.sweep.dir={folder}"]
    first = train(tmp_path, *command)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "sweep summary timings: read 4 jobs" in first.stdout
    assert "(held in memory)" in first.stdout
    written_rows = summary_rows(tmp_path, folder)
    client, (parent,), _ = runs_of(tmp_path)
    written_metrics = parent.data.metrics

    # Run again in its folder: every job finished earlier, none written by this process.
    second = train(tmp_path, *command)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "(from the store)" in second.stdout
    assert "(held in memory)" not in second.stdout
    client, (resumed,), jobs = runs_of(tmp_path)
    assert resumed.info.run_id == parent.info.run_id and len(jobs) == 4
    # The same summary: numbers, statuses, cells, run ids.
    assert summary_rows(tmp_path, folder) == written_rows
    assert [row["status"] for row in written_rows] == ["FINISHED"] * 4
    assert {row["solved"] for row in written_rows} == {"0", "1"}
    assert resumed.data.metrics == written_metrics


@pytest.mark.slow
def test_a_vectorized_sweep_that_ends_in_an_error_summarises_what_the_store_holds(tmp_path):
    result = train(tmp_path, "-m", VECTORIZED, "seed=1", "optimizer.learning_rate=0.5,-1", *QUICK)
    assert result.returncode == 2
    # Its jobs were all written here, but an error may have come from the store itself.
    assert "sweep summary timings: read 2 jobs" in result.stdout
    assert "(from the store)" in result.stdout
    assert [row["status"] for row in summary_rows(tmp_path)] == ["FINISHED", "FAILED: error"]
