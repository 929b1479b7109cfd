"""A sweep parent's Markdown description (its Overview page): the answer first, as a table of
cells or values with their 95% intervals, then how the sweep ran and how to read it in MLflow.
A pure function of the jobs' results, as `summary`'s."""

import numpy as np

from gatelab.history import SOLVED_THRESHOLD
from gatelab.sweeps.intervals import wilson_interval
from gatelab.sweeps.summary import (
    SEED_KEY,
    JobResult,
    cells_of,
    group_metrics,
    outcome_line,
    success_counts,
)

ANSWER_HEADER = "| {what} | solved | success rate | 95% CI | median epochs_to_solve |"
ANSWER_RULE = "|---|---|---|---|---|"
HOW_SURE = (
    "95% CI: Wilson's 95% interval of the success rate, from the solved and total counts: the "
    "rates over many more seeds that these counts are consistent with. Two rows whose intervals "
    "overlap are not told apart by these seeds; more seeds narrow them."
)


def answer_row(label: str, solved: int, total: int, median: str) -> str:
    """A row of the answer table: `| lr=0.5 | 9/10 | 0.90 | 0.60-0.98 | 288 |`."""
    interval = wilson_interval(solved, total)
    rate, shown = (f"{solved / total:.2f}", interval.text()) if interval else ("-", "-")
    return f"| {label} | {solved}/{total} | {rate} | {shown} | {median} |"


def description(
    results: list[JobResult],
    swept: list[str],
    metrics: dict[str, float],
    run_id: str,
    command: str,
    link: str,
) -> str:
    """The parent's Markdown description (its Overview page): the answer first, then how."""
    cells = cells_of(results, swept)
    lines = [
        f"**{outcome_line(metrics)}** "
        f"(solved: every output on the right side of {SOLVED_THRESHOLD}).",
    ]
    if cells:
        lines += ["", ANSWER_HEADER.format(what="cell"), ANSWER_RULE]
        for name, jobs in cells.items():
            cell = group_metrics(jobs)
            median = (
                f"{cell['epochs_to_solve_median']:g}" if "epochs_to_solve_median" in cell else "-"
            )
            lines.append(answer_row(name, int(cell["solved_jobs"]), int(cell["jobs"]), median))
        lines += [
            "",
            HOW_SURE,
            "",
            "Each cell is a run, child of this one, holding these numbers: "
            f"[open the cells]({link}) and chart `success_rate` in the Chart view, one bar per "
            "cell. A cell's seeds are its children. (Grouping the runs table's rows computes "
            "over the runs loaded, 100 a "
            "page: chart the cells, not grouped seeds.)",
        ]
    for key in [key for key in swept if key != SEED_KEY and not cells]:
        values, solved, jobs = success_counts(results, key)
        lines += ["", ANSWER_HEADER.format(what=f"`{key}`"), ANSWER_RULE]
        for value, count, total in zip(values, solved, jobs, strict=True):
            epochs = [
                result.epochs_to_solve
                for result in results
                if result.values[key] == value and result.solved and result.epochs_to_solve
            ]
            median = f"{np.median(epochs):g}" if epochs else "-"
            lines.append(answer_row(value, count, total, median))
    if not cells and any(key != SEED_KEY for key in swept):
        lines += ["", HOW_SURE]
    solved = [result for result in results if result.solved and result.epochs_to_solve]
    if solved:
        best = min(solved, key=lambda result: result.epochs_to_solve)
        lines += ["", f"Best job: `{best.name}`, solved at epoch {best.epochs_to_solve}."]
    elif results:
        best = min(results, key=lambda result: result.loss if np.isfinite(result.loss) else 1e30)
        lines += ["", f"No job solved; the lowest final loss: `{best.name}` ({best.loss:.4g})."]
    lines += [
        "",
        f"Sweep of {' x '.join(f'`{key}`' for key in swept) or 'nothing'}, "
        f"{len(results)} jobs: `{command}`",
    ]
    if not cells:
        lines += [
            "",
            "To see only this sweep's jobs, search the runs table for "
            f'`tags.mlflow.parentRunId = "{run_id}"` ([open it]({link})). '
            "In the Chart view, group by a swept param and chart `solved`: "
            "its mean per group is the success rate.",
        ]
    return "\n".join(lines)
