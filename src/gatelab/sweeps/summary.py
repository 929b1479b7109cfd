"""A sweep's summary as numbers and text: pure functions of its jobs' results.

No MLflow and no matplotlib here: `results` reads the jobs back, `publish` logs what these
functions compute, and tests check them on hand-made results.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from gatelab.history import SOLVED_THRESHOLD
from gatelab.tracking.naming import metric_key, short_keys


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

    @property
    def solved(self) -> bool:
        return self.accuracy == 1.0


def sweep_status(results: list[JobResult], interrupted: bool) -> str:
    """KILLED when stopped before its jobs ended, FAILED when a job raised, else FINISHED."""
    # A diverged job is a result of the sweep, not a failure of it.
    if interrupted or any(result.status in ("KILLED", "RUNNING") for result in results):
        return "KILLED"
    if any(result.status == "FAILED: error" for result in results):
        return "FAILED"
    return "FINISHED"


def numeric_first(value: str) -> tuple:
    """Sort key for swept values: numbers by value (0.05 before 0.1), then the rest by name."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def summary_row(result: JobResult, swept: list[str]) -> dict[str, Any]:
    """A job's line of the summary: swept values and results first, names and ids last."""
    return {
        "job": result.number,
        **{key: result.values.get(key, "") for key in swept},
        "solved": int(result.solved),
        "accuracy": f"{result.accuracy:.3g}",
        "loss": f"{result.loss:.6g}",
        "epochs_to_solve": result.epochs_to_solve if result.epochs_to_solve else "",
        "status": result.status,
        "run_name": result.name,
        "overrides": result.overrides,
        "run_id": result.run_id,
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no jobs)"
    columns = [column for column in rows[0] if column not in ("run_name", "overrides", "run_id")]
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


def sweep_metrics(results: list[JobResult], swept: list[str]) -> dict[str, float]:
    """The parent's metrics: jobs, solved jobs, success rate (overall and per swept value) and
    the median and quartiles of `epochs_to_solve` over the solved jobs."""
    solved = [result for result in results if result.solved]
    metrics = {
        "jobs": float(len(results)),
        "solved_jobs": float(len(solved)),
        "success_rate": round(len(solved) / len(results), 4) if results else 0.0,
    }
    epochs = [result.epochs_to_solve for result in solved if result.epochs_to_solve]
    if epochs:
        low, median, high = np.percentile(epochs, [25, 50, 75])
        metrics |= {
            "epochs_to_solve_median": float(median),
            "epochs_to_solve_p25": float(low),
            "epochs_to_solve_p75": float(high),
        }
    names = short_keys(swept)
    for key in swept:
        if key == "seed":
            continue
        values, solved_counts, jobs = success_counts(results, key)
        for value, solved_jobs, total in zip(values, solved_counts, jobs, strict=True):
            name = metric_key(f"success_rate/{names[key]}_{value}")
            metrics[name] = round(solved_jobs / total, 4)
    return metrics


def outcome_line(metrics: dict[str, float]) -> str:
    """`solved 11/15 jobs (0.7333); epochs_to_solve over solved: median 640, quartiles 420-900`."""
    line = (
        f"solved {int(metrics['solved_jobs'])}/{int(metrics['jobs'])} jobs "
        f"({metrics['success_rate']:g})"
    )
    if "epochs_to_solve_median" in metrics:
        line += (
            f"; epochs_to_solve over the solved: median {metrics['epochs_to_solve_median']:g}, "
            f"quartiles {metrics['epochs_to_solve_p25']:g}-{metrics['epochs_to_solve_p75']:g}"
        )
    return line


def description(
    results: list[JobResult],
    swept: list[str],
    metrics: dict[str, float],
    run_id: str,
    command: str,
    link: str,
) -> str:
    """The parent's Markdown description (its Overview page): what was swept, how it went."""
    lines = [
        f"Sweep of {' x '.join(f'`{key}`' for key in swept) or 'nothing'}, "
        f"{len(results)} jobs: `{command}`",
        "",
        f"**{outcome_line(metrics)}** "
        f"(solved: every output on the right side of {SOLVED_THRESHOLD}).",
    ]
    for key in [key for key in swept if key != "seed"]:
        values, solved, jobs = success_counts(results, key)
        lines += ["", f"| `{key}` | solved | success rate | median epochs_to_solve |"]
        lines.append("|---|---|---|---|")
        for value, count, total in zip(values, solved, jobs, strict=True):
            epochs = [
                result.epochs_to_solve
                for result in results
                if result.values[key] == value and result.solved and result.epochs_to_solve
            ]
            median = f"{np.median(epochs):g}" if epochs else "-"
            lines.append(f"| {value} | {count}/{total} | {count / total:.2f} | {median} |")
    solved = [result for result in results if result.solved and result.epochs_to_solve]
    if solved:
        best = min(solved, key=lambda result: result.epochs_to_solve)
        lines += ["", f"Best job: `{best.name}`, solved at epoch {best.epochs_to_solve}."]
    elif results:
        best = min(results, key=lambda result: result.loss if np.isfinite(result.loss) else 1e30)
        lines += ["", f"No job solved; the lowest final loss: `{best.name}` ({best.loss:.4g})."]
    lines += [
        "",
        "To see only this sweep's jobs, search the runs table for "
        f'`tags.mlflow.parentRunId = "{run_id}"` ([open it]({link})). '
        "In the Chart view, group by a swept param and chart `solved`: "
        "its mean per group is the success rate.",
    ]
    return "\n".join(lines)


def success_grid(
    results: list[JobResult], row_key: str, column_key: str
) -> tuple[list[str], list[str], np.ndarray]:
    rows = distinct_values(results, row_key)
    columns = distinct_values(results, column_key)
    rates = np.full((len(rows), len(columns)), np.nan)
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            cell = [
                result.solved
                for result in results
                if result.values[row_key] == row and result.values[column_key] == column
            ]
            if cell:
                rates[i, j] = np.mean(cell)
    return rows, columns, rates
