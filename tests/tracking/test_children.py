"""The child-run seam: a store chosen from the URI writes children and reads them back, and the
two stores (SQL bulk, MLflow's client) leave the same runs, as MLflow reads them."""

import logging
import threading
import uuid
from dataclasses import replace

import pytest
from mlflow.tracking import MlflowClient

from gatelab.tracking import bulk, children, records
from gatelab.tracking.children import ChildStore, ClientChildStore, SqlChildStore, child_store
from gatelab.tracking.experiment import configure
from tests.helpers import comparable_run, sweep_children


def test_an_sql_store_of_the_tested_mlflow_and_schema_is_written_in_bulk(store_uri):
    configure(store_uri, "children")
    store = child_store(store_uri)
    assert type(store) is SqlChildStore
    assert (store.name, store.seconds_per_child) == ("SQL bulk writer", 0.002)


def test_an_sql_store_of_another_schema_or_mlflow_is_written_by_the_client(
    tracking_uri, monkeypatch
):
    configure(tracking_uri, "children")
    monkeypatch.setattr(bulk, "TESTED_SCHEMA", "0123456789ab")
    store = child_store(tracking_uri)
    assert type(store) is ClientChildStore
    assert "the bulk writer is tested with 0123456789ab" in store.reason
    monkeypatch.setattr(bulk, "TESTED_MLFLOW", "1.0.0")
    assert "the bulk writer is tested with 1.0.0" in child_store(tracking_uri).reason


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:5000",
        "https://alice:S3CRET@mlflow.example.com",
        "databricks",
        "file:///tmp/mlruns",
        "mlruns",
    ],
)
def test_any_other_store_is_written_by_mlflows_client(uri):
    store = child_store(uri)
    assert type(store) is ClientChildStore
    assert (store.name, store.seconds_per_child) == ("MLflow client", 0.015)
    assert store.reason.endswith("is not an SQL store (sqlite, postgresql, mysql)")
    assert "S3CRET" not in store.reason


def test_the_store_is_where_mlflow_is_set_to_unless_a_uri_is_given(tracking_uri):
    configure(tracking_uri, "children")
    assert child_store().uri == tracking_uri
    assert child_store("http://127.0.0.1:5000").uri == "http://127.0.0.1:5000"


def test_a_scheme_registered_gets_the_store_its_builder_makes(monkeypatch):
    monkeypatch.setattr(children, "_BUILDERS", dict(children._BUILDERS))

    class Remembered(ClientChildStore):
        name = "remembered"

    children.register("batch", Remembered)
    assert type(child_store("batch+https://mlflow.example.com")) is Remembered
    assert type(child_store("https://mlflow.example.com")) is ClientChildStore


def write_through(store: ChildStore, uri: str, parent_run_id: str) -> dict[int, str]:
    """The sweep's children written by `store` into an experiment of their own; every call of
    `on_written` carries run ids, each job's once."""
    experiment_id = configure(uri, f"{store.name}-{uuid.uuid4().hex[:8]}")
    calls: list[dict[int, str]] = []
    wanted = sweep_children(parent_run_id)
    run_ids = store.write_all(experiment_id, wanted[:5], on_written=calls.append, batch=2)
    assert all(calls)
    assert [number for written in calls for number in written] == [0, 1, 2, 3, 4]
    assert {number: run_id for written in calls for number, run_id in written.items()} == run_ids
    # One record alone, as the callback writes a job that failed before its run.
    run_ids[5] = store.write(experiment_id, wanted[5])
    return run_ids


def test_both_stores_write_the_runs_mlflow_reads_back_equal(store_uri):
    client = MlflowClient(store_uri)
    parent_run_id = client.create_run(configure(store_uri, "parents")).info.run_id
    by_bulk = write_through(SqlChildStore(store_uri), store_uri, parent_run_id)
    by_client = write_through(ClientChildStore(store_uri), store_uri, parent_run_id)
    assert sorted(by_bulk) == sorted(by_client) == list(range(6))
    for number, run_id in by_client.items():
        assert comparable_run(client.get_run(by_bulk[number])) == comparable_run(
            client.get_run(run_id)
        )
    assert {client.get_run(run_id).info.status for run_id in by_bulk.values()} == {
        records.FINISHED,
        records.FAILED,
    }


def test_both_stores_read_the_same_runs_tagged(store_uri):
    client = MlflowClient(store_uri)
    parent_run_id = client.create_run(configure(store_uri, "parents")).info.run_id
    run_ids = write_through(SqlChildStore(store_uri), store_uri, parent_run_id)
    experiment_id = client.get_run(run_ids[0]).info.experiment_id
    client.delete_run(run_ids[3])  # deleted runs are not read, as `search_runs`
    read = [
        store.runs_tagged(experiment_id, records.SWEEP_TAG, parent_run_id)
        for store in (SqlChildStore(store_uri), ClientChildStore(store_uri))
    ]
    assert [len(runs) for runs in read] == [5, 5]
    in_bulk, by_client = ({run.info.run_id: run for run in runs} for runs in read)
    assert sorted(in_bulk) == sorted(by_client) == sorted(set(run_ids.values()) - {run_ids[3]})
    for run_id, run in by_client.items():
        ours = in_bulk[run_id]
        assert ours.info.to_proto() == run.info.to_proto()
        assert (ours.data.params, ours.data.tags) == (run.data.params, run.data.tags)
        assert ours.data.metrics == run.data.metrics
    for store in (SqlChildStore(store_uri), ClientChildStore(store_uri)):
        assert store.runs_tagged(experiment_id, records.SWEEP_TAG, "another sweep") == []


def test_the_console_says_which_writer_wrote(tracking_uri, monkeypatch, caplog):
    experiment_id = configure(tracking_uri, "children")
    caplog.set_level(logging.INFO, logger=children.__name__)
    child_store(tracking_uri).write_all(experiment_id, sweep_children("a-parent"))
    monkeypatch.setattr(bulk, "TESTED_MLFLOW", "1.0.0")
    child_store(tracking_uri).write_all(experiment_id, sweep_children("a-parent")[:2])
    lines = [record.getMessage() for record in caplog.records if record.name == children.__name__]
    assert lines[0] == "6 child runs written by the SQL bulk writer (500 runs a transaction)"
    assert lines[1].startswith("2 child runs written by MLflow's client: MLflow ")
    assert len(MlflowClient(tracking_uri).search_runs([experiment_id])) == 8


@pytest.mark.parametrize(
    ("store_type", "counted_when_cancelled"),
    [(SqlChildStore, 6), (ClientChildStore, 3)],
    ids=["bulk", "client"],
)
def test_a_cancelled_writing_ends_after_the_runs_being_written_counted(
    tracking_uri, store_type, counted_when_cancelled
):
    # Set by another thread (a stop of the sweep training the next group): here as the first
    # transaction (bulk: 6 runs) or the third run (client: fewer than `writer.PARALLEL_FROM`,
    # one at a time in this process) is counted.
    experiment_id = configure(tracking_uri, "cancelled")
    cancel = threading.Event()
    counted: dict[int, str] = {}

    def on_written(run_ids: dict[int, str]) -> None:
        counted.update(run_ids)
        if len(counted) >= counted_when_cancelled:
            cancel.set()

    many = [
        replace(record, job_number=index)
        for index, record in enumerate(sweep_children("a-parent") * 3)
    ]
    with pytest.raises(KeyboardInterrupt):
        store_type(tracking_uri).write_all(
            experiment_id, many, on_written=on_written, batch=6, cancel=cancel
        )
    stored = MlflowClient(tracking_uri).search_runs([experiment_id])
    assert {run.info.run_id for run in stored} == set(counted.values())
    assert len(counted) == counted_when_cancelled
