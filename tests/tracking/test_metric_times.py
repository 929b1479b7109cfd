"""Every metric point of a written child lies within its run, where MLflow's wall-time and
relative-time chart axes put it, and both writers put it at the same time (issue 26 item 9)."""

import uuid

import sqlalchemy
from mlflow.tracking import MlflowClient

from gatelab.tracking import bulk, records, writer
from gatelab.tracking.experiment import configure
from tests.helpers import CHILD_EPOCHS, sweep_children


def points_by_run(client: MlflowClient, run_ids: dict[int, str]) -> dict[int, dict[str, list]]:
    """Each run's metric history as MLflow reads it back: (step, value, timestamp) by key."""
    return {
        number: {
            key: sorted(
                (point.step, point.value, point.timestamp)
                for point in client.get_metric_history(run_id, key)
            )
            for key in client.get_run(run_id).data.metrics
        }
        for number, run_id in run_ids.items()
    }


def written_by_both_writers(uri: str) -> tuple[dict[int, str], dict[int, str]]:
    """`sweep_children` written by MLflow's client and by the bulk writer, each in its own
    experiment; their run ids by job number."""
    name = uuid.uuid4().hex[:8]
    by_client = configure(uri, f"client-{name}")
    by_bulk = configure(uri, f"bulk-{name}")
    parent_run_id = MlflowClient(uri).create_run(by_client, run_name="sweep").info.run_id
    wanted = sweep_children(parent_run_id)
    client_ids = writer.write_all(by_client, wanted, writers=1)
    engine = sqlalchemy.create_engine(uri)
    try:
        bulk_ids = bulk.BulkWriter(engine, by_bulk).write_all(wanted)
    finally:
        engine.dispose()
    return client_ids, bulk_ids


def test_every_metric_point_of_a_written_child_lies_within_its_run(store_uri):
    client = MlflowClient(store_uri)
    for run_ids in written_by_both_writers(store_uri):
        histories = points_by_run(client, run_ids)
        assert sum(len(points) for run in histories.values() for points in run.values()) > 40
        for number, run_id in run_ids.items():
            info = client.get_run(run_id).info
            for key, points in histories[number].items():
                for step, _, timestamp in points:
                    assert info.start_time <= timestamp <= info.end_time, (number, key, step)


def test_both_writers_put_each_point_at_the_same_time(store_uri):
    client_ids, bulk_ids = written_by_both_writers(store_uri)
    client = MlflowClient(store_uri)
    by_client, by_bulk = points_by_run(client, client_ids), points_by_run(client, bulk_ids)
    trained = [number for number in client_ids if number != 5]  # 5: refused, no metrics
    assert [by_bulk[number] for number in trained] == [by_client[number] for number in trained]
    assert by_bulk[5] == by_client[5] == {}


def test_loss_points_spread_over_the_run_in_proportion_to_their_epoch():
    record = sweep_children("a-parent")[0]  # trained in 500 ms, a loss point every 4 epochs
    metrics = record.metrics(timestamp=0)
    loss = [metric for metric in metrics if metric.key == "loss"]
    assert [metric.step for metric in loss] == list(range(4, CHILD_EPOCHS + 1, 4))
    assert [metric.timestamp - record.start_time for metric in loss] == [
        500 * step // CHILD_EPOCHS for step in range(4, CHILD_EPOCHS + 1, 4)
    ]
    outcome = [metric for metric in metrics if metric.key != "loss"]
    assert {metric.key for metric in outcome} == set(record.outcome)
    assert {(metric.timestamp, metric.step) for metric in outcome} == {(record.end_time, 0)}


def test_a_diverged_runs_last_finite_loss_is_at_its_end():
    diverged = sweep_children("a-parent")[4]
    assert diverged.status == records.FAILED
    loss = [metric for metric in diverged.metrics() if metric.key == "loss"]
    assert loss[-1].step < CHILD_EPOCHS
    assert loss[-1].timestamp == diverged.end_time
    times = [metric.timestamp for metric in loss]
    assert times == sorted(set(times))  # one a loss point, in epoch order


def test_a_record_without_times_has_its_points_at_the_time_it_is_written():
    record = records.RunRecord(
        job_number=0,
        name="single",
        tags={},
        params={},
        outcome={"accuracy": 1.0},
        loss_points=[(1, 0.5), (2, 0.25)],
    )
    assert {metric.timestamp for metric in record.metrics(timestamp=1234)} == {1234}
