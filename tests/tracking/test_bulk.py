"""The SQL bulk writer: the same children as MLflow's client writes, read back equal by MLflow,
a batch a transaction, and chosen only for the SQL stores it was tested on."""

import logging
import re
import time
import uuid

import mlflow
import numpy as np
import pytest
import sqlalchemy
from mlflow.store.tracking.dbmodels.models import (
    SqlInput,
    SqlLatestMetric,
    SqlMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)
from mlflow.tracking import MlflowClient

from gatelab.data import truth_table
from gatelab.history import History
from gatelab.tracking import bulk, records, writer
from gatelab.tracking.experiment import configure

EPOCHS = 40
LAYERS = [("hidden", ["kernel", "bias"]), ("output", ["kernel", "bias"])]


def trained_record(job: records.Job, learning_rate: float, diverged: bool) -> records.RunRecord:
    """A vectorized child as `sweeps.population` builds it (nothing is trained)."""
    table = truth_table("xor", 2)
    loss = 0.3 * np.exp(-np.arange(1, EPOCHS + 1) * learning_rate / 10)
    if diverged:
        loss[30:] = np.inf
    history = History(loss=loss.astype(np.float32), solved=np.arange(EPOCHS) > 20)
    rng = np.random.default_rng(job.number)
    return records.trained(
        job,
        name=records.run_name(job, "mlp-xor"),
        params={"seed": str(job.number), "optimizer.learning_rate": str(learning_rate)},
        user_tags={"team": "ml"},
        history=history,
        outputs=0.8 * table.targets + 0.1 * job.number % 2,
        inputs=table.inputs,
        targets=table.targets,
        layers=LAYERS,
        weights=[rng.normal(size=shape) for shape in [(2, 2), (2,), (2, 1), (1,)]],
        epochs=EPOCHS,
        max_loss_points=10,
        dataset="xor",
        start_time=1_700_000_000_000 + job.number,
        end_time=1_700_000_000_500 + job.number,
    )


def children(parent_run_id: str) -> list[records.RunRecord]:
    """Six children of one sweep: solved or not, one diverged, one refused before training."""
    made = []
    for number in range(6):
        learning_rate = 0.5 if number < 3 else 2.0
        job = records.Job(
            overrides=[f"seed={number}", f"optimizer.learning_rate={learning_rate}"],
            choices={"model": "mlp", "dataset": "xor"},
            parent_run_id=parent_run_id,
            number=number,
            swept=["seed", "optimizer.learning_rate"],
            sweep_run_id=parent_run_id,
        )
        if number == 5:
            made.append(
                records.failed(
                    job,
                    name=records.run_name(job, "mlp-xor"),
                    params={"seed": "5", "optimizer.learning_rate": "x"},
                    user_tags={"team": "ml"},
                    error=ValueError("optimizer.learning_rate='x' is not a number"),
                )
            )
        else:
            made.append(trained_record(job, learning_rate, diverged=number == 4))
    return made


@pytest.fixture(params=["sqlite", "postgresql"])
def store_uri(request: pytest.FixtureRequest) -> str:
    """An SQLite store in tmp_path, or a database of the module's PostgreSQL cluster."""
    if request.param == "sqlite":
        uri = request.getfixturevalue("tracking_uri")
    else:
        uri = request.getfixturevalue("postgres_uri")
    mlflow.set_tracking_uri(uri)
    return uri


def written_both_ways(uri: str) -> tuple[dict[int, str], dict[int, str], str]:
    """The same children by MLflow's client and by the bulk writer, each in its experiment;
    returns their run ids by job number and the sweep's parent run."""
    name = uuid.uuid4().hex[:8]
    client = MlflowClient(uri)
    by_client = configure(uri, f"client-{name}")
    by_bulk = configure(uri, f"bulk-{name}")
    parent_run_id = client.create_run(by_client, run_name="sweep").info.run_id
    wanted = children(parent_run_id)
    client_ids = writer.write_all(by_client, wanted, writers=1)
    engine = sqlalchemy.create_engine(uri)
    try:
        bulk_ids = bulk.BulkWriter(engine, by_bulk).write_all(wanted)
    finally:
        engine.dispose()
    return client_ids, bulk_ids, parent_run_id


def comparable(run) -> dict:
    """What MLflow reads back of a run, apart from its ids and times."""
    info = run.info
    return {
        "name": info.run_name,
        "status": info.status,
        "lifecycle_stage": info.lifecycle_stage,
        "user_id": info.user_id,
        "artifact_uri": info.artifact_uri.replace(info.run_id, "RUN").replace(
            f"/{info.experiment_id}/", "/EXPERIMENT/"
        ),
        "params": run.data.params,
        "tags": run.data.tags,
        "metrics": run.data.metrics,
        "inputs": [
            (item.dataset.to_dictionary(), [(tag.key, tag.value) for tag in item.tags])
            for item in run.inputs.dataset_inputs
        ],
    }


def test_mlflow_reads_bulk_children_back_as_the_clients(store_uri):
    client_ids, bulk_ids, parent_run_id = written_both_ways(store_uri)
    client = MlflowClient(store_uri)
    assert sorted(bulk_ids) == sorted(client_ids) == list(range(6))
    for number, client_id in client_ids.items():
        by_client, by_bulk = client.get_run(client_id), client.get_run(bulk_ids[number])
        assert comparable(by_bulk) == comparable(by_client)
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
    assert trained.data.metrics["loss"] == pytest.approx(0.3 * np.exp(-EPOCHS * 0.05), rel=1e-6)
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
    wanted = children("a-parent") * 3  # 18 runs: batches of 5, 5, 5, 3
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
    good = children("a-parent")
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
            children("a-parent") * 2, written.update, batch=6
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


def test_the_console_says_which_writer_wrote(tracking_uri, monkeypatch, caplog):
    experiment_id = configure(tracking_uri, "bulk")
    mlflow.set_tracking_uri(tracking_uri)
    caplog.set_level(logging.INFO, logger=bulk.__name__)
    written: dict[int, str] = {}
    run_ids = bulk.write_all(experiment_id, children("a-parent"), on_written=written.update)
    assert written == run_ids
    monkeypatch.setattr(bulk, "TESTED_MLFLOW", "1.0.0")
    bulk.write_all(experiment_id, children("a-parent")[:2])
    lines = [record.getMessage() for record in caplog.records if record.name == bulk.__name__]
    assert lines[0] == "6 child runs written by the SQL bulk writer (500 runs a transaction)"
    assert lines[1].startswith("2 child runs written by MLflow's client: MLflow ")
    assert len(MlflowClient(tracking_uri).search_runs([experiment_id])) == 8


def test_runs_read_in_bulk_are_the_runs_mlflow_searches(store_uri):
    _, bulk_ids, parent_run_id = written_both_ways(store_uri)
    client = MlflowClient(store_uri)
    experiment_id = client.get_run(bulk_ids[0]).info.experiment_id
    client.delete_run(bulk_ids[3])  # deleted runs are not read, as `search_runs`
    searched = client.search_runs(
        [experiment_id], filter_string=f"tags.`{records.SWEEP_TAG}` = '{parent_run_id}'"
    )
    read = bulk.runs_tagged(experiment_id, records.SWEEP_TAG, parent_run_id)
    assert len(read) == len(searched) == 5
    by_id = {run.info.run_id: run for run in read}
    for run in searched:
        ours = by_id[run.info.run_id]
        assert ours.info.to_proto() == run.info.to_proto()
        assert (ours.data.params, ours.data.tags) == (run.data.params, run.data.tags)
        assert ours.data.metrics == run.data.metrics
    assert bulk.runs_tagged(experiment_id, records.SWEEP_TAG, "another sweep") == []


def test_runs_are_not_read_in_bulk_from_a_store_that_is_not_sql(monkeypatch):
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: "http://127.0.0.1:5000")
    assert bulk.runs_tagged("1", records.SWEEP_TAG, "a sweep") is None


def test_run_ids_rise_as_they_are_made_and_are_uuid7_as_mlflow_spells_ids():
    # Rising ids put a batch's rows at one end of the store's run-id indexes (docs/speed.md).
    made = [bulk.new_id() for _ in range(2000)]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(re.fullmatch(r"[0-9a-f]{32}", run_id) for run_id in made)
    assert {uuid.UUID(run_id).version for run_id in made} == {7}
    assert abs(int(made[0][:12], 16) - time.time() * 1000) < 60_000  # the time, in ms
