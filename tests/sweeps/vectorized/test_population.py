"""A vectorized sweep's job is recorded as the run the same job logs alone (one definition)."""

from pathlib import Path

import numpy as np
import pytest

from gatelab import pipeline
from gatelab.sweeps.members import SWEEP_DEFAULTS
from gatelab.sweeps.progress import Progress
from gatelab.sweeps.vectorized import population
from gatelab.sweeps.vectorized.population import MemberJob, Recorded, run_population
from gatelab.tracking import children, records

SWEPT = ["seed", "optimizer.learning_rate"]
CHOICES = {"dataset": "xor", "model": "mlp", "optimizer": "sgd", "trainer": "default"}
# As a vectorized sweep sets them: no model or PNG per child, a coarse loss metric.
AS_IN_A_SWEEP = [f"tracking.{key.split('.')[1]}={value}" for key, value in SWEEP_DEFAULTS.items()]


def job(number: int, overrides: list[str], output_dir: Path) -> records.Job:
    return records.Job(
        overrides=overrides,
        choices=CHOICES,
        output_dir=output_dir,
        number=number,
        swept=SWEPT,
    )


def per_job_record(compose_config, tracking_uri, monkeypatch, the_job) -> records.RunRecord:
    """The record `pipeline.run` logs for `the_job`, as a job of a per-job sweep."""
    logged = []
    log_results = pipeline.log_results

    def keep(record, *args, **kwargs):
        logged.append(record)
        return log_results(record, *args, **kwargs)

    monkeypatch.setattr(pipeline, "log_results", keep)
    cfg = compose_config(*the_job.overrides, *AS_IN_A_SWEEP, "trainer.print_every=0")
    pipeline.run(cfg, the_job)
    (record,) = logged
    return record


def vectorized_records(compose_config, monkeypatch, jobs, values) -> list[records.RunRecord]:
    """The records a vectorized sweep writes for `jobs` (with their swept `values`)."""
    written = []

    class Kept(children.ClientChildStore):
        """Keeps the records it is given, as runs `run-<job number>`."""

        def write_all(self, experiment_id, run_records, *, on_written, batch):
            written.extend(run_records)
            run_ids = {record.job_number: f"run-{record.job_number}" for record in run_records}
            on_written(run_ids)
            return run_ids

    monkeypatch.setattr(population.children, "child_store", lambda uri=None: Kept("kept"))
    cfg = compose_config(*AS_IN_A_SWEEP, "trainer.print_every=0", "trainer.epochs=300")
    members = [MemberJob(job, job_values) for job, job_values in zip(jobs, values, strict=True)]
    recorded = Recorded()
    outcomes = run_population(cfg, members, Progress(), recorded)
    losses, boundaries = recorded.arrays.losses, recorded.arrays.boundaries
    assert (recorded.trained, recorded.written) == (len(jobs), len(jobs))
    # The trained members' boundaries, computed from their weights, for the galleries.
    assert sorted(boundaries) == sorted(losses)
    assert boundaries["run-0"]["outputs"].shape == (81, 81)
    assert sorted(losses) == [f"run-{job.number}" for job in jobs if job.number in (0, 1)]
    assert [outcome.job for outcome in outcomes] == jobs
    return sorted(written, key=lambda record: record.job_number)


def assert_same_record(together: records.RunRecord, alone: records.RunRecord) -> None:
    numbers = ("outcome", "loss_points", "weights", "predictions")
    # A member's times are its share of the population's training; a run alone's, its own.
    times = ("start_time", "end_time")
    assert together.start_time < together.end_time and alone.start_time is None
    # A member's arrays are in its parent's members.npz too (a run alone's, its artifacts).
    together_tags = dict(together.tags)
    assert "members.npz" in together_tags.pop("arrays") and "arrays" not in alone.tags
    assert together_tags == alone.tags
    # Its page says where those arrays are and how to re-run it alone (a run alone has them).
    assert "gatelab.runs rerun" in together.description and alone.description is None
    fields = (
        set(together.__dataclass_fields__) - set(numbers) - set(times) - {"tags", "description"}
    )
    for field in fields:
        assert getattr(together, field) == getattr(alone, field), field
    assert together.outcome == pytest.approx(alone.outcome)
    assert [step for step, _ in together.loss_points] == [step for step, _ in alone.loss_points]
    together_losses = [loss for _, loss in together.loss_points]
    assert together_losses == pytest.approx([loss for _, loss in alone.loss_points], rel=1e-5)
    assert together.predictions.keys() == alone.predictions.keys()
    for column, values in together.predictions.items():
        np.testing.assert_allclose(values, alone.predictions[column], rtol=1e-5)
    assert together.weights.keys() == alone.weights.keys()
    for layer, weights in together.weights.items():
        assert weights.keys() == alone.weights[layer].keys()
        for name, value in weights.items():
            np.testing.assert_allclose(value, alone.weights[layer][name], rtol=1e-4, atol=1e-6)


def test_a_vectorized_child_is_the_record_its_job_logs_alone(
    compose_config, tracking_uri, tmp_path, monkeypatch
):
    jobs = [
        job(0, ["seed=3", "optimizer.learning_rate=0.5", "trainer.epochs=300"], tmp_path / "0"),
        job(1, ["seed=1", "optimizer.learning_rate=2.0", "trainer.epochs=300"], tmp_path / "1"),
        # Refused before training: its FAILED record, with the error.
        job(2, ["seed=1", "optimizer.learning_rate=-1", "trainer.epochs=300"], tmp_path / "2"),
    ]
    values = [
        {"seed": 3, "optimizer.learning_rate": 0.5},
        {"seed": 1, "optimizer.learning_rate": 2.0},
        {"seed": 1, "optimizer.learning_rate": -1},
    ]
    for the_job in jobs:
        the_job.output_dir.mkdir()
    together = vectorized_records(compose_config, monkeypatch, jobs, values)
    assert [record.job_number for record in together] == [0, 1, 2]
    for record, the_job in zip(together[:2], jobs[:2], strict=True):
        alone = per_job_record(compose_config, tracking_uri, monkeypatch, the_job)
        assert record.name == f"seed={the_job.overrides[0][5:]} lr={the_job.overrides[1][24:]}"
        assert_same_record(record, alone)
    failed = together[2]
    assert failed.status == "FAILED"
    assert failed.result_tags["error"].startswith("ConfigError: optimizer.learning_rate=-1")
    assert failed.tags == records.record_tags(jobs[2], {})
    assert failed.tags["mlflow.user"] == records.context_tags()["mlflow.user"]
    assert failed.params["optimizer.learning_rate"] == "-1"


def test_the_logging_progress_line_says_nothing_of_a_rate_before_a_child_is_logged():
    # A writer process killed before it wrote anything leaves 0 written: no rate, no ETA.
    assert population.logging_progress(0, 500, 0.0) == "child runs logged: 0/500"
    assert population.logging_progress(0, 500, 12.5) == "child runs logged: 0/500"
    assert population.logging_progress(100, 500, 2.0) == (
        "child runs logged: 100/500 (50/s, ETA 8 s)"
    )
    # Written at once (a clock that has not moved): a rate, not a division by zero.
    assert population.logging_progress(500, 500, 0.0).startswith("child runs logged: 500/500 (")
