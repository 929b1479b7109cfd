"""A sweep's summary as numbers and text: pure functions of its jobs' results.

No MLflow and no matplotlib here: `results` reads the jobs back, `publish` logs what these
functions compute, and tests check them on hand-made results.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from gatelab.sweeps.intervals import wilson_interval
from gatelab.tracking.naming import child_run_name, metric_key, short_keys
from gatelab.tracking.statuses import FAILED, FINISHED, KILLED, RUNNING


@dataclass(frozen=True)
class JobResult:
    """One row of the sweep summary, read back from the job's MLflow run."""

    number: int
    name: str
    values: dict[str, str]
    loss: float
    accuracy: float
    epochs_to_solve: int | None
    status: str
    run_id: str
    output_dir: str = ""
    overrides: str = ""
    # The run the job's run is a child of: its cell's, or the sweep's parent.
    parent_run_id: str = ""

    @property
    def solved(self) -> bool:
        return self.accuracy == 1.0


def sweep_status(results: list[JobResult], interrupted: bool) -> str:
    """KILLED when stopped before its jobs ended, FAILED when a job raised, else FINISHED."""
    # A diverged job is a result of the sweep, not a failure of it.
    if interrupted or any(result.status in (KILLED, RUNNING) for result in results):
        return KILLED
    if not results:
        return FAILED  # it failed before its first job: a sweep has at least one
    if any(result.status == f"{FAILED}: error" for result in results):
        return FAILED
    return FINISHED


def stopped_line(results: list[JobResult], planned: int | None, sweep_dir: str) -> str:
    """What a stopped sweep recorded, and how to finish it (`sweeps.resume`)."""
    recorded = sum(result.status not in (KILLED, RUNNING) for result in results)
    of = f" of {planned}" if planned is not None else ""
    return (
        f"stopped: {recorded}{of} jobs recorded; to finish the rest, run the same command "
        f"again with hydra.sweep.dir={sweep_dir}"
    )


def numeric_first(value: str) -> tuple:
    """Sort key for swept values: numbers by value (0.05 before 0.1), then the rest by name."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def summary_row(
    result: JobResult, swept: list[str], cell: dict[str, float] | None = None
) -> dict[str, Any]:
    """A job's line of the summary: swept values and results first, names and ids last.

    Args:
        cell: the `group_metrics` of the job's cell, whose success rate and interval it shows.
    """
    row = {
        "job": result.number,
        **{key: result.values.get(key, "") for key in swept},
        "solved": int(result.solved),
        "accuracy": f"{result.accuracy:.3g}",
        "loss": f"{result.loss:.6g}",
        "epochs_to_solve": result.epochs_to_solve if result.epochs_to_solve else "",
        "status": result.status,
    }
    if cell is not None:
        row |= {f"cell_{key}": cell.get(key, "") for key in CELL_COLUMNS}
    return row | {"run_name": result.name, "overrides": result.overrides, "run_id": result.run_id}


# What a job's row repeats of its cell: the answer, beside each of the seeds it is made of.
CELL_COLUMNS = ("success_rate", "success_rate_ci_low", "success_rate_ci_high")


def summary_rows(results: list[JobResult], swept: list[str]) -> list[dict[str, Any]]:
    """`sweep_summary.csv`'s rows, in job order; with cells, each with its cell's success rate
    and 95% interval (`cell_success_rate`, `cell_success_rate_ci_low`, `_high`)."""
    cell_of = {
        id(job): metrics
        for jobs in cells_of(results, swept).values()
        for metrics in [group_metrics(jobs)]
        for job in jobs
    }
    return [summary_row(result, swept, cell_of.get(id(result))) for result in results]


def format_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no jobs)"
    # The console's per-cell lines say the cells' numbers once, not once per seed.
    hidden = ("run_name", "overrides", "run_id", *(f"cell_{key}" for key in CELL_COLUMNS))
    columns = [column for column in rows[0] if column not in hidden]
    widths = {
        column: max(len(column), *(len(str(row[column])) for row in rows)) for column in columns
    }
    lines = ["  ".join(column.ljust(widths[column]) for column in columns)]
    lines += [
        "  ".join(str(row[column]).ljust(widths[column]) for column in columns) for row in rows
    ]
    return "\n".join(lines)


def distinct_values(results: list[JobResult], key: str) -> list[str]:
    """The values a swept key took, numbers in numeric order."""
    return sorted({result.values[key] for result in results}, key=numeric_first)


def success_rates(results: list[JobResult], key: str) -> tuple[list[str], list[float]]:
    """Fraction of jobs (of seeds, in a seed sweep) reaching 100% accuracy per value of `key`."""
    values, solved, jobs = success_counts(results, key)
    return values, [count / total for count, total in zip(solved, jobs, strict=True)]


def success_counts(results: list[JobResult], key: str) -> tuple[list[str], list[int], list[int]]:
    """Per value of `key`: how many jobs solved, and how many jobs there were."""
    values = distinct_values(results, key)
    groups = [[result for result in results if result.values[key] == value] for value in values]
    solved = [sum(result.solved for result in group) for group in groups]
    return values, solved, [len(group) for group in groups]


SEED_KEY = "seed"
# The console shows the job table up to this many rows; the CSV always has every row.
CONSOLE_ROWS = 40
# A cell's own gallery shows its first seeds, this many at most.
CELL_GALLERY_JOBS = 40


def cell_keys(swept: list[str]) -> list[str]:
    """The swept keys that make a cell: all but the seed, when the seed is swept with others."""
    if SEED_KEY not in swept or len(swept) < 2:
        return []
    return [key for key in swept if key != SEED_KEY]


def cells_of(results: list[JobResult], swept: list[str]) -> dict[str, list[JobResult]]:
    """The jobs of each cell of the grid by cell name (`lr=0.5`), cells in the grid's order."""
    keys = cell_keys(swept)
    if not keys:
        return {}
    ordered = sorted(
        results, key=lambda result: [numeric_first(result.values[key]) for key in keys]
    )
    cells: dict[str, list[JobResult]] = {}
    for result in ordered:
        cells.setdefault(child_run_name({key: result.values[key] for key in keys}), []).append(
            result
        )
    return cells


def group_metrics(results: list[JobResult]) -> dict[str, float]:
    """A group of jobs' numbers: jobs, solved jobs, success rate and its 95% interval
    (`success_rate_ci_low`, `_high`; none without jobs), the median and quartiles of
    `epochs_to_solve` over the solved jobs, and the median final loss."""
    solved = [result for result in results if result.solved]
    metrics = {
        "jobs": float(len(results)),
        "solved_jobs": float(len(solved)),
        "success_rate": round(len(solved) / len(results), 4) if results else 0.0,
        **interval_metrics(len(solved), len(results)),
    }
    epochs = [result.epochs_to_solve for result in solved if result.epochs_to_solve]
    if epochs:
        low, median, high = np.percentile(epochs, [25, 50, 75])
        metrics |= {
            "epochs_to_solve_median": float(median),
            "epochs_to_solve_p25": float(low),
            "epochs_to_solve_p75": float(high),
        }
    losses = [result.loss for result in results if np.isfinite(result.loss)]
    if losses:
        metrics["loss_median"] = float(np.median(losses))
    return metrics


def sweep_metrics(results: list[JobResult], swept: list[str]) -> dict[str, float]:
    """The parent's metrics: `group_metrics` of all its jobs and, for a sweep without cells,
    the success rate per swept value (a sweep with cells has it on each cell's run, where the
    Chart view draws every cell on one axis)."""
    metrics = group_metrics(results)
    if cell_keys(swept):
        return metrics
    names = short_keys(swept)
    for key in swept:
        if key == SEED_KEY:
            continue
        values, solved_counts, jobs = success_counts(results, key)
        for value, solved_jobs, total in zip(values, solved_counts, jobs, strict=True):
            name = metric_key(f"success_rate/{names[key]}_{value}")
            metrics[name] = round(solved_jobs / total, 4)
            for bound, number in interval_metrics(solved_jobs, total).items():
                metrics[metric_key(f"{bound}/{names[key]}_{value}")] = number
    return metrics


def interval_metrics(solved: int, total: int) -> dict[str, float]:
    """`success_rate_ci_low` and `success_rate_ci_high`, Wilson's 95% interval of `solved` of
    `total` to 4 digits as `success_rate` is; none when `total` is 0."""
    interval = wilson_interval(solved, total)
    if interval is None:
        return {}
    return {
        "success_rate_ci_low": round(interval.low, 4),
        "success_rate_ci_high": round(interval.high, 4),
    }


def rate_with_interval(solved: int, total: int, rate: float | None = None) -> str:
    """`0.9, 95% CI 0.60-0.98`: a success rate and its interval (the rate alone without jobs).

    Args:
        rate: the rate as shown elsewhere (a metric, rounded); `solved / total` if None.
    """
    interval = wilson_interval(solved, total)
    shown = f"{rate if rate is not None else solved / total if total else 0.0:.4g}"
    return f"{shown}, 95% CI {interval.text()}" if interval else shown


def outcome_line(metrics: dict[str, float]) -> str:
    """`solved 9/10 jobs (0.9, 95% CI 0.60-0.98); epochs_to_solve over the solved: median 640,
    quartiles 420-900`."""
    solved, jobs = int(metrics["solved_jobs"]), int(metrics["jobs"])
    line = (
        f"solved {solved}/{jobs} jobs ({rate_with_interval(solved, jobs, metrics['success_rate'])})"
    )
    if "epochs_to_solve_median" in metrics:
        line += (
            f"; epochs_to_solve over the solved: median {metrics['epochs_to_solve_median']:g}, "
            f"quartiles {metrics['epochs_to_solve_p25']:g}-{metrics['epochs_to_solve_p75']:g}"
        )
    return line


def cell_lines(results: list[JobResult], swept: list[str]) -> list[str]:
    """One line per cell of the grid, `lr=0.5: solved 41/100 jobs (0.41); ...`: the answer."""
    return [
        f"{name}: {outcome_line(group_metrics(jobs))}"
        for name, jobs in cells_of(results, swept).items()
    ]


def console_summary(rows: list[dict[str, Any]], lines: list[str], csv_path: str) -> str:
    """What the console shows at a sweep's end: the jobs' table while it fits on a screen, else
    where it is, then the answer per cell (at most a screenful of those too)."""
    if len(rows) <= CONSOLE_ROWS:
        text = format_table(rows)
    else:
        text = f"{len(rows)} jobs: every row is in {csv_path}"
    if lines:
        shown = lines[:CONSOLE_ROWS]
        if len(lines) > len(shown):
            shown.append(f"... and {len(lines) - len(shown)} more cells in {csv_path}")
        text += "\nsuccess rate per cell:\n" + "\n".join(shown)
    return text


def success_grid(
    results: list[JobResult], row_key: str, column_key: str
) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """The success rate of every pair of values of two keys (NaN where none ran), and its 95%
    interval: (rows, columns, 2) lows and highs."""
    rows = distinct_values(results, row_key)
    columns = distinct_values(results, column_key)
    rates = np.full((len(rows), len(columns)), np.nan)
    intervals = np.full((len(rows), len(columns), 2), np.nan)
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            cell = [
                result.solved
                for result in results
                if result.values[row_key] == row and result.values[column_key] == column
            ]
            if cell:
                rates[i, j] = np.mean(cell)
                interval = wilson_interval(sum(cell), len(cell))
                intervals[i, j] = (interval.low, interval.high)
    return rows, columns, rates, intervals
