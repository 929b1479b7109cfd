"""A finished sweep's summary, published: on the console, as `sweep_summary.csv` in the sweep
folder, and on the parent run as metrics, a Markdown description and figures."""

import csv
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from gatelab.plane import BoundaryView
from gatelab.sweeps.parent import read_losses
from gatelab.sweeps.results import boundary, loss_history
from gatelab.sweeps.summary import (
    JobResult,
    description,
    format_table,
    numeric_first,
    outcome_line,
    success_counts,
    success_grid,
    summary_row,
    sweep_metrics,
)
from gatelab.tracking.links import runs_url, sweep_filter, ui_command
from gatelab.tracking.naming import child_run_name
from gatelab.views import sweep_figures
from gatelab.views.sweep_figures import Panel

log = logging.getLogger(__name__)

SUMMARY_FILE = "sweep_summary.csv"
# The gallery shows at most this many groups (rows) and jobs per group (columns).
GALLERY_ROWS = 8
GALLERY_COLUMNS = 8


@dataclass(frozen=True)
class ParentRun:
    """A sweep's parent run: where its summary goes."""

    client: MlflowClient
    run_id: str
    swept: list[str]
    command: str
    sweep_dir: Path


def publish(parent: ParentRun, results: list[JobResult]) -> None:
    """Print the summary, write it as CSV in the sweep folder and log it with its figures."""
    rows = [summary_row(result, parent.swept) for result in results]
    log.info("sweep summary (%d jobs):\n%s", len(rows), format_table(rows))
    parent.sweep_dir.mkdir(parents=True, exist_ok=True)
    summary_path = parent.sweep_dir / SUMMARY_FILE
    with summary_path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else ["job"])
        writer.writeheader()
        writer.writerows(rows)
    parent.client.log_artifact(parent.run_id, str(summary_path))
    metrics = sweep_metrics(results, parent.swept)
    log.info("%s", outcome_line(metrics))
    timestamp = int(time.time() * 1000)
    parent.client.log_batch(
        parent.run_id,
        metrics=[Metric(key, value, timestamp, 0) for key, value in metrics.items()],
    )
    experiment_id = parent.client.get_run(parent.run_id).info.experiment_id
    link = runs_url(experiment_id, sweep_filter(parent.run_id))
    parent.client.set_tag(
        parent.run_id,
        "mlflow.note.content",
        description(results, parent.swept, metrics, parent.run_id, parent.command, link),
    )
    for figure_name, figure in figures(parent, results).items():
        parent.client.log_figure(parent.run_id, figure, figure_name)
    log.info(
        "sweep run %s; summary %s; to compare: %s, then open this sweep's jobs at %s",
        parent.run_id,
        summary_path,
        ui_command(),
        link,
    )


def figures(parent: ParentRun, results: list[JobResult]) -> dict[str, Figure]:
    """The parent's PNGs by file name: success rates, loss curves, epochs to solve, boundaries."""
    compared = [key for key in parent.swept if key != "seed"]
    pngs = {}
    for key in compared:
        values, solved, jobs = success_counts(results, key)
        pngs[f"success_rate_by_{key}.png"] = sweep_figures.success_rate_bars(
            values, solved, jobs, key
        )
    if len(compared) >= 2:
        rows, columns, rates = success_grid(results, compared[0], compared[1])
        name = f"success_rate_{compared[0]}_x_{compared[1]}.png"
        pngs[name] = sweep_figures.success_heatmap(rows, columns, rates, compared[0], compared[1])
    colour_key = (
        "optimizer.learning_rate"
        if "optimizer.learning_rate" in compared
        else (compared[0] if compared else None)
    )
    # The curves a sweeper left in the sweep folder, else each job's own.
    known_losses = read_losses(parent.sweep_dir)
    colour_values = (
        [result.values.get(colour_key, "") for result in results] if colour_key else None
    )
    pngs["loss_curves.png"] = sweep_figures.overlaid_loss_curves(
        [loss_history(parent.client, result, known_losses) for result in results],
        colour_values,
        colour_key,
        distinct=sorted(set(colour_values or [""]), key=numeric_first),
    )
    group_key = colour_key or "seed"
    if results and group_key in parent.swept:
        values, _, jobs = success_counts(results, group_key)
        epochs = [
            [
                result.epochs_to_solve
                for result in results
                if result.values[group_key] == value and result.solved and result.epochs_to_solve
            ]
            for value in values
        ]
        pngs["epochs_to_solve.png"] = sweep_figures.epochs_to_solve_by_value(
            values, epochs, jobs, group_key
        )
    boundaries = gallery(parent, results)
    if boundaries is not None:
        pngs["decision_boundaries.png"] = boundaries
    return pngs


def gallery(parent: ParentRun, results: list[JobResult]) -> Figure | None:
    """`decision_boundaries.png`: a panel per job, seeds along a row, a row per setting."""
    # With seeds swept, a row holds one setting's seeds; else a row per value of the first key.
    row_keys = [key for key in parent.swept if key != "seed"]
    if "seed" not in parent.swept:
        row_keys = parent.swept[:1]
    groups: dict[str, list[JobResult]] = {}
    for result in sorted(
        results,
        key=lambda result: [numeric_first(result.values[key]) for key in parent.swept],
    ):
        label = child_run_name({key: result.values[key] for key in row_keys})
        groups.setdefault(label, []).append(result)
    panels: dict[str, list[Panel]] = {}
    shown = 0
    table = None
    for label, members in list(groups.items())[:GALLERY_ROWS]:
        for result in members[:GALLERY_COLUMNS]:
            arrays = boundary(parent.client, result)
            if arrays is None:
                continue
            table = arrays
            view = BoundaryView(
                outputs=arrays["outputs"].astype(np.float32),
                hidden_lines=arrays["hidden_lines"],
            )
            panels.setdefault(label, []).append(Panel(result.name, view, result.solved))
            shown += 1
    if table is None:
        return None
    hidden = len(results) - shown
    footnote = ""
    if hidden:
        shown_ids = {
            result.run_id
            for members in list(groups.values())[:GALLERY_ROWS]
            for result in members[:GALLERY_COLUMNS]
        }
        rest = [result for result in results if result.run_id not in shown_ids]
        footnote = (
            f"{shown} of {len(results)} jobs shown; the other {len(rest)}: "
            f"{sum(result.solved for result in rest)} solved (see sweep_summary.csv)"
        )
    solved = sum(result.solved for result in results)
    return sweep_figures.boundary_gallery(
        panels,
        table["inputs"],
        table["targets"],
        f"decision boundaries: {solved}/{len(results)} jobs solved",
        footnote,
    )
