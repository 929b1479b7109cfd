"""A sweep's summary maths, pure: metrics, description and rows from hand-made results."""

import mlflow
import numpy as np

from gatelab.sweeps.summary import (
    JobResult,
    description,
    success_grid,
    success_rates,
    summary_row,
    sweep_metrics,
)
from gatelab.tracking.naming import child_run_name, swept_keys


def job(number: int, seed: str, rate: str, accuracy: float, epochs: int | None) -> JobResult:
    values = {"seed": seed, "optimizer.learning_rate": rate}
    name = child_run_name(values)
    return JobResult(number, name, values, 0.1, accuracy, epochs, "FINISHED", f"id{number}")


RESULTS = [
    job(0, "0", "0.1", 1.0, 1400),
    job(1, "1", "0.1", 0.5, None),
    job(2, "2", "0.1", 0.75, None),
    job(3, "0", "2.0", 1.0, 100),
    job(4, "1", "2.0", 1.0, 200),
    job(5, "2", "2.0", 1.0, 300),
]


def test_sweep_metrics_count_the_solved_and_describe_epochs_to_solve_over_them_only():
    metrics = sweep_metrics(RESULTS, ["seed", "optimizer.learning_rate"])
    assert metrics == {
        "jobs": 6,
        "solved_jobs": 4,
        "success_rate": 0.6667,
        # Over 100, 200, 300, 1400 only: the unsolved jobs have no epochs_to_solve.
        "epochs_to_solve_median": 250,
        "epochs_to_solve_p25": 175,
        "epochs_to_solve_p75": 575,
        "success_rate/lr_0.1": 0.3333,
        "success_rate/lr_2.0": 1.0,
    }
    for key in metrics:
        mlflow.utils.validation._validate_metric_name(key)


def test_the_sweep_description_has_the_success_table_the_best_job_and_the_filter():
    metrics = sweep_metrics(RESULTS, ["seed", "optimizer.learning_rate"])
    text = description(RESULTS, ["seed", "optimizer.learning_rate"], metrics, "p1", "cmd", "url")
    assert "| 0.1 | 1/3 | 0.33 | 1400 |" in text
    assert "| 2.0 | 3/3 | 1.00 | 200 |" in text
    assert "Best job: `seed=0 lr=2.0`, solved at epoch 100." in text
    assert 'tags.mlflow.parentRunId = "p1"' in text


def test_a_summary_row_puts_results_before_names_and_ids():
    row = summary_row(RESULTS[0], ["seed", "optimizer.learning_rate"])
    assert list(row) == [
        "job",
        "seed",
        "optimizer.learning_rate",
        "solved",
        "accuracy",
        "loss",
        "epochs_to_solve",
        "status",
        "run_name",
        "overrides",
        "run_id",
    ]
    assert (row["solved"], row["epochs_to_solve"]) == (1, 1400)
    assert summary_row(RESULTS[1], [])["epochs_to_solve"] == ""
    assert np.isclose(float(row["loss"]), 0.1)


def test_swept_keys_are_the_overrides_with_several_values():
    overrides = [
        "model=mlp",
        "seed=range(3)",
        "optimizer.learning_rate=0.1,1.0",
        "trainer.epochs=5",
    ]
    assert swept_keys(overrides) == ["seed", "optimizer.learning_rate"]
    assert swept_keys(["seed=1"]) == []


def job_result(seed: str, learning_rate: str, accuracy: float) -> JobResult:
    values = {"seed": seed, "optimizer.learning_rate": learning_rate}
    return JobResult(0, "", values, 0.1, accuracy, None, "FINISHED", "")


def test_success_rate_is_the_fraction_of_jobs_at_full_accuracy_per_value():
    results = [
        job_result("0", "0.1", 1.0),
        job_result("1", "0.1", 0.5),
        job_result("0", "1.0", 1.0),
    ]
    assert success_rates(results, "optimizer.learning_rate") == (["0.1", "1.0"], [0.5, 1.0])
    rows, columns, rates = success_grid(results, "seed", "optimizer.learning_rate")
    assert (rows, columns) == (["0", "1"], ["0.1", "1.0"])
    np.testing.assert_array_equal(rates, [[1.0, 1.0], [0.0, np.nan]])
