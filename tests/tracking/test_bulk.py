"""The SQL bulk writer: the same children as MLflow's client writes, read back equal by MLflow,
a batch a transaction, and chosen only for the SQL stores it was tested on."""

import dataclasses
import math
import re
import time
import uuid
from collections.abc import Callable

import mlflow
import numpy as np
import pytest
import sqlalchemy
from mlflow.store.tracking.dbmodels.models import (
    SqlDataset,
    SqlInput,
    SqlLatestMetric,
    SqlMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)
from mlflow.tracking import MlflowClient

from gatelab.tracking import bulk, records, writer
from gatelab.tracking.experiment import configure
from tests.helpers import CHILD_EPOCHS, comparable_run, sweep_children


def written_both_ways(
    uri: str, make: Callable[[str], list[records.RunRecord]] = sweep_children
) -> tuple[dict[int, str], dict[int, str], str]:
    """The same children (by default `sweep_children`) by MLflow's client and by the bulk
    writer, each in its experiment; returns their run ids by job number and the sweep's parent."""
    name = uuid.uuid4().hex[:8]
    client = MlflowClient(uri)
    by_client = configure(uri, f"client-{name}")
    by_bulk = configure(uri, f"bulk-{name}")
    parent_run_id = client.create_run(by_client, run_name="sweep").info.run_id
    wanted = make(parent_run_id)
    client_ids = writer.write_all(by_client, wanted, writers=1)
    engine = sqlalchemy.create_engine(uri)
    try:
        bulk_ids = bulk.BulkWriter(engine, by_bulk).write_all(wanted)
    finally:
        engine.dispose()
    return client_ids, bulk_ids, parent_run_id


def test_mlflow_reads_bulk_children_back_as_the_clients(store_uri):
    client_ids, bulk_ids, parent_run_id = written_both_ways(store_uri)
    client = MlflowClient(store_uri)
    assert sorted(bulk_ids) == sorted(client_ids) == list(range(6))
    for number, client_id in client_ids.items():
        by_client, by_bulk = client.get_run(client_id), client.get_run(bulk_ids[number])
        assert comparable_run(by_bulk) == comparable_run(by_client)
        assert by_bulk.data.tags["mlflow.parentRunId"] == parent_run_id
        if number != 5:  # trained: its times are the record's (else when it is written)
            assert (by_bulk.info.start_time, by_bulk.info.end_time) == (
                by_client.info.start_time,
                by_client.info.end_time,
            )
        for key in by_client.data.metrics:
            points = [
                [(point.step, point.value) for point in client.get_metric_history(run_id, key)]
                for run_id in (client_id, bulk_ids[number])
            ]
            assert points[1] == points[0]
    trained = client.get_run(bulk_ids[0])
    assert trained.inputs.dataset_inputs[0].dataset.name == "xor"
    assert trained.data.metrics["loss"] == pytest.approx(
        0.3 * np.exp(-CHILD_EPOCHS * 0.05), rel=1e-6
    )
    assert client.get_run(bulk_ids[4]).data.tags["failure_reason"] == records.DIVERGED


def stored_rows(uri: str, run_ids: dict[int, str]) -> dict[str, list[tuple]]:
    """Every row of these runs in MLflow's tables, with ids as job numbers and without times."""
    names = {run_id: f"job {number}" for number, run_id in run_ids.items()}
    tables = [model.__table__ for model in (SqlRun, SqlTag, SqlParam, SqlMetric, SqlLatestMetric)]
    inputs = SqlInput.__table__
    queries = {
        table.name: sqlalchemy.select(table).where(table.c.run_uuid.in_(names)) for table in tables
    }
    queries["inputs"] = sqlalchemy.select(inputs).where(inputs.c.destination_id.in_(names))
    engine = sqlalchemy.create_engine(uri)
    rows = {}
    with engine.connect() as connection:
        for name, query in queries.items():
            rows[name] = sorted(
                tuple(
                    (column, names.get(value, value))
                    for column, value in row._mapping.items()
                    if column not in UNCOMPARED
                )
                for row in connection.execute(query)
            )
    engine.dispose()
    return rows


# Times, the experiment, and ids made afresh (the run's own id is replaced by its job number).
UNCOMPARED = ("start_time", "end_time", "timestamp", "experiment_id", "artifact_uri")
UNCOMPARED += ("input_uuid", "source_id")


def test_the_bulk_writer_stores_the_rows_mlflow_stores(store_uri):
    client_ids, bulk_ids, _ = written_both_ways(store_uri)
    by_client, by_bulk = stored_rows(store_uri, client_ids), stored_rows(store_uri, bulk_ids)
    assert by_bulk == by_client
    assert len(by_bulk["runs"]) == 6
    assert len(by_bulk["metrics"]) > 40


def odd_points(parent_run_id: str) -> list[records.RunRecord]:
    """Children whose metric points are NaN, infinite, logged twice or a large integer."""
    child = sweep_children(parent_run_id)[0]
    points = [(1, 0.5), (2, math.nan), (3, math.inf), (4, -math.inf), (5, 0.25), (5, 0.25)]
    return [
        dataclasses.replace(child, loss_points=points, outcome={"accuracy": 0.5, "big": 2**53}),
        dataclasses.replace(child, job_number=1, loss_points=[(1, math.nan)], outcome={}),
        dataclasses.replace(child, job_number=2, loss_points=[(1, 0.5), (2, math.inf)]),
    ]


def test_nan_infinite_and_repeated_points_are_stored_as_mlflow_stores_them(store_uri):
    client_ids, bulk_ids, _ = written_both_ways(store_uri, odd_points)
    by_client, by_bulk = stored_rows(store_uri, client_ids), stored_rows(store_uri, bulk_ids)
    assert by_bulk == by_client
    assert len(by_bulk["metrics"]) == 5 + 2 + 1 + 2 + len(odd_points("p")[2].outcome)
    # job 1's only loss is NaN: its latest point too
    assert {bool(dict(row)["is_nan"]) for row in by_bulk["latest_metrics"]} == {True, False}


@pytest.mark.parametrize(
    "filter_string",
    [
        "params.`optimizer.learning_rate` = '2.0'",
        "tags.`hydra.job.num` = '5'",
        "tags.failure_reason = 'diverged'",
        "metrics.solved = 1",
        "metrics.loss < 0.1",
        "attributes.status = 'FAILED'",
        "tags.`mlflow.parentRunId` = 'PARENT'",
        "dataset.name = 'xor'",
    ],
)
def test_search_finds_the_same_bulk_children_as_the_clients(store_uri, filter_string):
    client_ids, bulk_ids, parent_run_id = written_both_ways(store_uri)
    client = MlflowClient(store_uri)
    found = []
    for run_ids in (client_ids, bulk_ids):
        experiment_id = client.get_run(run_ids[0]).info.experiment_id
        runs = client.search_runs(
            [experiment_id], filter_string.replace("PARENT", parent_run_id), max_results=100
        )
        found.append(sorted(int(run.data.tags["hydra.job.num"]) for run in runs))
    assert found[1] == found[0]
    assert found[0]  # each filter finds some children


def test_a_batch_that_fails_half_way_leaves_none_of_its_runs(tracking_uri, monkeypatch):
    experiment_id = configure(tracking_uri, "bulk")
    wanted = sweep_children("a-parent") * 3  # 18 runs: batches of 5, 5, 5, 3
    ids = iter([uuid.uuid4().hex for _ in range(7)] + ["same"] * 20)
    # The 8th run (the 3rd of the second batch) and those after it share an id: the database
    # refuses the 9th, after the second batch's first runs went in.
    monkeypatch.setattr(bulk, "new_id", lambda: next(ids))
    written: dict[int, str] = {}
    engine = sqlalchemy.create_engine(tracking_uri)
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        bulk.BulkWriter(engine, experiment_id).write_all(wanted, written.update, batch=5)
    runs = MlflowClient(tracking_uri).search_runs([experiment_id], max_results=100)
    assert {run.info.run_id for run in runs} == set(written.values())
    assert len(written) == 5
    with engine.connect() as connection:
        for table in ("tags", "params", "metrics", "latest_metrics"):
            orphans = connection.exec_driver_sql(
                f"SELECT COUNT(*) FROM {table} WHERE run_uuid NOT IN (SELECT run_uuid FROM runs)"
            ).scalar()
            assert orphans == 0
        inputs = connection.exec_driver_sql("SELECT COUNT(*) FROM inputs").scalar()
    engine.dispose()
    assert inputs == 5  # the first batch's children, all trained: one input each


@pytest.mark.parametrize(
    ("key", "value", "refused"),
    [("accuracy", "high", 'Invalid value "high"'), ("solved?", 1.0, 'Invalid value "solved?"')],
)
def test_a_metric_mlflow_would_refuse_is_refused_after_valid_runs_too(
    tracking_uri, key, value, refused
):
    experiment_id = configure(tracking_uri, "bulk")
    engine = sqlalchemy.create_engine(tracking_uri)
    writer_ = bulk.BulkWriter(engine, experiment_id)
    good = sweep_children("a-parent")
    assert len(writer_.write_all(good)) == len(good)  # every name of `bad` checked once already
    bad = good[0]
    bad.outcome[key] = value
    with pytest.raises(mlflow.exceptions.MlflowException, match=re.escape(refused)):
        writer_.write_all([good[1], bad])
    engine.dispose()
    assert len(MlflowClient(tracking_uri).search_runs([experiment_id])) == len(good)


def test_a_stop_while_a_batch_is_inserted_leaves_none_of_it(tracking_uri):
    experiment_id = configure(tracking_uri, "bulk")
    engine = sqlalchemy.create_engine(tracking_uri)
    inserts = []

    @sqlalchemy.event.listens_for(engine, "before_cursor_execute")
    def stop_at_the_second_batchs_metrics(connection, cursor, statement, *args):
        if statement.startswith("INSERT INTO metrics"):
            inserts.append(statement)
            if len(inserts) == 2:
                raise KeyboardInterrupt  # Ctrl-C, after its runs, tags and params went in

    written: dict[int, str] = {}
    with pytest.raises(KeyboardInterrupt):
        bulk.BulkWriter(engine, experiment_id).write_all(
            sweep_children("a-parent") * 2, written.update, batch=6
        )
    engine.dispose()
    runs = MlflowClient(tracking_uri).search_runs([experiment_id], max_results=100)
    assert sorted(run.info.run_id for run in runs) == sorted(written.values())
    assert len(runs) == 6
    assert all(run.data.params for run in runs)
    assert "RUNNING" not in {run.info.status for run in runs}


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("http://127.0.0.1:5000", "is not an SQL store"),
        ("https://mlflow.example.com", "is not an SQL store"),
        ("databricks", "is not an SQL store"),
        ("file:///tmp/mlruns", "is not an SQL store"),
        ("mlruns", "is not an SQL store"),
    ],
)
def test_a_store_that_is_not_sql_is_written_by_the_client(uri, reason):
    assert reason in bulk.unsupported_reason(uri)


def test_an_sql_store_is_written_in_bulk_by_the_tested_mlflow_only(tracking_uri, monkeypatch):
    configure(tracking_uri, "bulk")
    assert bulk.unsupported_reason(tracking_uri) is None
    monkeypatch.setattr(bulk, "TESTED_SCHEMA", "0123456789ab")
    assert "the bulk writer is tested with 0123456789ab" in bulk.unsupported_reason(tracking_uri)
    monkeypatch.setattr(bulk, "TESTED_MLFLOW", "1.0.0")
    assert "the bulk writer is tested with 1.0.0" in bulk.unsupported_reason(tracking_uri)


def test_run_ids_rise_as_they_are_made_and_are_uuid7_as_mlflow_spells_ids():
    # Rising ids put a batch's rows at one end of the store's run-id indexes (docs/speed.md).
    made = [bulk.new_id() for _ in range(2000)]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(re.fullmatch(r"[0-9a-f]{32}", run_id) for run_id in made)
    assert {uuid.UUID(run_id).version for run_id in made} == {7}
    assert abs(int(made[0][:12], 16) - time.time() * 1000) < 60_000  # the time, in ms


def test_a_dataset_another_writer_inserted_meanwhile_is_not_inserted_twice(
    tracking_uri, monkeypatch
):
    # Two shards start writing at once: each looked for the dataset before the other committed
    # it. The second's batch fails on the dataset's unique key, and is written again with it.
    experiment_id = configure(tracking_uri, "shards")
    engine = sqlalchemy.create_engine(tracking_uri)
    first, second = bulk.BulkWriter(engine, experiment_id), bulk.BulkWriter(engine, experiment_id)
    stored = second._stored
    looked: list[tuple[str, str]] = []

    def not_there_yet(key: tuple[str, str]) -> str | None:
        if not looked:  # its first look, before the first writer committed
            looked.append(key)
            return None
        return stored(key)

    monkeypatch.setattr(second, "_stored", not_there_yet)
    children = [
        dataclasses.replace(record, job_number=number)
        for number, record in enumerate(sweep_children("a-parent") * 2)
    ]
    half = len(children) // 2
    first.write_all(children[:half])
    counted: dict[int, str] = {}
    second.write_all(children[half:], counted.update)
    assert looked and sorted(counted) == [record.job_number for record in children[half:]]
    with engine.connect() as connection:
        datasets = connection.execute(sqlalchemy.select(SqlDataset.dataset_uuid)).scalars().all()
        inputs = connection.execute(sqlalchemy.select(SqlInput.source_id)).scalars().all()
    engine.dispose()
    # One dataset, every input of both writers' runs pointing at it.
    assert len(datasets) == 1 and len(inputs) > half and set(inputs) == set(datasets)
    runs = MlflowClient(tracking_uri).search_runs([experiment_id])
    assert len(runs) == len(children)
