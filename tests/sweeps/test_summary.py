"""A sweep's summary maths, pure: metrics, description and rows from hand-made results."""

import mlflow
import numpy as np

from gatelab.sweeps.description import description
from gatelab.sweeps.summary import (
    CONSOLE_ROWS,
    JobResult,
    cell_keys,
    cell_lines,
    cells_of,
    console_summary,
    group_metrics,
    success_grid,
    success_rates,
    summary_row,
    summary_rows,
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


SWEPT = ["seed", "optimizer.learning_rate"]


def test_sweep_metrics_count_the_solved_and_describe_epochs_to_solve_over_them_only():
    metrics = sweep_metrics(RESULTS, SWEPT)
    assert metrics == {
        "jobs": 6,
        "solved_jobs": 4,
        "success_rate": 0.6667,
        # Wilson's 95% interval of 4 solved of 6.
        "success_rate_ci_low": 0.3,
        "success_rate_ci_high": 0.9032,
        # Over 100, 200, 300, 1400 only: the unsolved jobs have no epochs_to_solve.
        "epochs_to_solve_median": 250,
        "epochs_to_solve_p25": 175,
        "epochs_to_solve_p75": 575,
        "loss_median": 0.1,
    }
    for key in metrics:
        mlflow.utils.validation._validate_metric_name(key)


def test_without_seeds_the_parent_has_the_success_rate_of_each_value():
    # No cells without swept seeds: the rate per value is the parent's.
    metrics = sweep_metrics(RESULTS, ["optimizer.learning_rate"])
    assert (metrics["success_rate/lr_0.1"], metrics["success_rate/lr_2.0"]) == (0.3333, 1.0)
    # Each beside its 95% interval: 1 of 3, 3 of 3.
    assert (metrics["success_rate_ci_low/lr_0.1"], metrics["success_rate_ci_high/lr_0.1"]) == (
        0.0615,
        0.7923,
    )
    assert (metrics["success_rate_ci_low/lr_2.0"], metrics["success_rate_ci_high/lr_2.0"]) == (
        0.4385,
        1.0,
    )
    for key in metrics:
        mlflow.utils.validation._validate_metric_name(key)


def test_a_sweep_over_seeds_and_rates_has_a_cell_per_rate_with_its_own_numbers():
    assert cell_keys(SWEPT) == ["optimizer.learning_rate"]
    assert cell_keys(["seed"]) == [] and cell_keys(["optimizer.learning_rate"]) == []
    cells = cells_of(list(reversed(RESULTS)), SWEPT)
    assert list(cells) == ["lr=0.1", "lr=2.0"]
    assert [result.number for result in cells["lr=0.1"]] == [2, 1, 0]
    assert group_metrics(cells["lr=0.1"])["success_rate"] == 0.3333
    assert group_metrics(cells["lr=0.1"])["success_rate_ci_low"] == 0.0615
    assert group_metrics(cells["lr=2.0"])["success_rate_ci_high"] == 1.0
    # No jobs, no interval (and no division by zero).
    assert "success_rate_ci_low" not in group_metrics([])
    assert group_metrics(cells["lr=2.0"])["epochs_to_solve_median"] == 200
    assert cell_lines(RESULTS, SWEPT) == [
        "lr=0.1: solved 1/3 jobs (0.3333, 95% CI 0.06-0.79); epochs_to_solve over the solved: "
        "median 1400, quartiles 1400-1400",
        "lr=2.0: solved 3/3 jobs (1, 95% CI 0.44-1.00); epochs_to_solve over the solved: "
        "median 200, quartiles 150-250",
    ]


def test_the_console_shows_the_jobs_while_they_fit_on_a_screen_and_always_the_cells():
    rows = [summary_row(result, SWEPT) for result in RESULTS]
    lines = cell_lines(RESULTS, SWEPT)
    short = console_summary(rows, lines, "sweep_summary.csv")
    assert short.splitlines()[0].startswith("job  seed")
    assert short.splitlines()[-2:] == lines
    many = console_summary(rows * 10, lines * 30, "sweep_summary.csv")
    assert many.splitlines()[0] == "60 jobs: every row is in sweep_summary.csv"
    assert len(many.splitlines()) <= 2 + CONSOLE_ROWS + 1
    assert many.splitlines()[-1] == "... and 20 more cells in sweep_summary.csv"


def test_the_sweep_description_opens_with_the_answer_per_cell():
    metrics = sweep_metrics(RESULTS, SWEPT)
    text = description(RESULTS, SWEPT, metrics, "p1", "cmd", "url")
    assert text.startswith("**solved 4/6 jobs (0.6667, 95% CI 0.30-0.90)")
    assert "| cell | solved | success rate | 95% CI | median epochs_to_solve |" in text
    assert "| lr=0.1 | 1/3 | 0.33 | 0.06-0.79 | 1400 |" in text
    assert "| lr=2.0 | 3/3 | 1.00 | 0.44-1.00 | 200 |" in text
    # How to read two rows: the two cells' intervals overlap (0.44-0.79).
    assert "Two rows whose intervals overlap are not told apart by these seeds" in text
    assert "[open the cells](url)" in text
    assert "Best job: `seed=0 lr=2.0`, solved at epoch 100." in text


def test_without_cells_the_description_has_a_row_per_value_and_the_filter():
    swept = ["optimizer.learning_rate"]
    text = description(RESULTS, swept, sweep_metrics(RESULTS, swept), "p1", "cmd", "url")
    assert "| 0.1 | 1/3 | 0.33 | 0.06-0.79 | 1400 |" in text
    assert text.count("Two rows whose intervals overlap") == 1
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


def test_with_cells_each_row_of_the_csv_carries_its_cells_rate_and_interval():
    rows = summary_rows(list(reversed(RESULTS)), SWEPT)
    assert [row["job"] for row in rows] == [5, 4, 3, 2, 1, 0]  # the order it was given
    assert list(rows[0])[-6:] == [
        "cell_success_rate",
        "cell_success_rate_ci_low",
        "cell_success_rate_ci_high",
        "run_name",
        "overrides",
        "run_id",
    ]
    by_job = {row["job"]: row for row in rows}
    for job in (0, 1, 2):  # lr=0.1: 1 of 3
        cell = [by_job[job][f"cell_success_rate{end}"] for end in ("", "_ci_low", "_ci_high")]
        assert cell == [0.3333, 0.0615, 0.7923]
    assert by_job[3]["cell_success_rate_ci_low"] == 0.4385  # lr=2.0: 3 of 3
    # The console's job table leaves them to the per-cell lines; no cells, no columns.
    assert "cell_" not in console_summary(rows, [], "sweep_summary.csv")
    assert "cell_success_rate" not in summary_rows(RESULTS, ["optimizer.learning_rate"])[0]


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
    rows, columns, rates, intervals = success_grid(results, "seed", "optimizer.learning_rate")
    assert (rows, columns) == (["0", "1"], ["0.1", "1.0"])
    np.testing.assert_array_equal(rates, [[1.0, 1.0], [0.0, np.nan]])
    # One job a square: 1 of 1 is 0.21-1, 0 of 1 is 0-0.79; none ran at (1, 1.0).
    np.testing.assert_allclose(
        intervals,
        [[[0.2065, 1.0], [0.2065, 1.0]], [[0.0, 0.7935], [np.nan, np.nan]]],
        atol=5e-5,
    )
