"""Many finished runs written at once, by this process or by spawned writer processes."""

import mlflow
import pytest
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from gatelab import bulk, tracking


def records(count: int) -> list[bulk.RunRecord]:
    return [
        bulk.RunRecord(
            key=number,
            name=f"seed={number}",
            tags={"hydra.job.num": str(number)},
            params={"seed": str(number), "optimizer.learning_rate": "0.5"},
            metrics=[Metric("loss", 1.0 / (step + number + 1), 0, step) for step in range(3)]
            + [Metric("solved", float(number % 2), 0, 0)],
            result_tags={"weights": f"[{number}]"},
            status="FAILED" if number == 3 else "FINISHED",
        )
        for number in range(count)
    ]


@pytest.mark.parametrize("writers", [1, 2])
def test_every_record_becomes_the_run_it_describes(tracking_uri, writers):
    experiment_id = tracking.configure(tracking_uri, "bulk")
    written = []
    wanted = records(60)
    run_ids = bulk.write_all(experiment_id, wanted, on_written=written.append, writers=writers)
    assert sum(written) == 60
    assert sorted(run_ids) == list(range(60))
    assert len(set(run_ids.values())) == 60
    client = MlflowClient(tracking_uri)
    for record in wanted:
        run = client.get_run(run_ids[record.key])
        assert run.info.run_name == record.name
        assert run.info.status == record.status
        assert run.data.params == record.params
        assert run.data.tags["hydra.job.num"] == str(record.key)
        assert run.data.tags["weights"] == f"[{record.key}]"
        assert run.data.metrics["solved"] == record.key % 2
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [(point.step, point.value) for point in history] == [
            (metric.step, metric.value) for metric in record.metrics[:3]
        ]


@pytest.mark.parametrize("writers", [1, 2])
def test_a_record_mlflow_refuses_stops_the_writing_and_leaves_nothing_running(
    tracking_uri, writers
):
    experiment_id = tracking.configure(tracking_uri, "bulk")
    wanted = records(40)
    # MLflow refuses a `?` in a metric's name.
    wanted[20] = bulk.RunRecord(key=20, name="refused", tags={}, metrics=[Metric("a?", 1, 0, 0)])
    with pytest.raises(MlflowException, match="a\\?"):
        bulk.write_all(experiment_id, wanted, writers=writers)
    runs = mlflow.search_runs([experiment_id], output_format="list")
    statuses = {run.info.run_name: run.info.status for run in runs}
    assert statuses["refused"] == "KILLED"
    assert "RUNNING" not in statuses.values()
    # One chunk at a time per writer: what was not started yet was not written.
    assert len(runs) < 40
