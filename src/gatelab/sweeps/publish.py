"""A finished sweep's summary, published: on the console, as `sweep_summary.csv` in the sweep
folder, on the parent run (metrics, a Markdown description, figures) and on each cell's run."""

import csv
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from gatelab.plane import BoundaryView
from gatelab.sweeps.intervals import wilson_interval
from gatelab.sweeps.results import JobArrays
from gatelab.sweeps.summary import (
    CELL_GALLERY_JOBS,
    SEED_KEY,
    JobResult,
    cell_lines,
    cells_of,
    console_summary,
    description,
    group_metrics,
    numeric_first,
    outcome_line,
    stopped_line,
    success_counts,
    success_grid,
    summary_rows,
    sweep_metrics,
    sweep_status,
)
from gatelab.sweeps.sweep_folder import SweepArrays
from gatelab.tracking.links import children_url
from gatelab.tracking.records import COLOUR_TAG
from gatelab.views import sweep_figures
from gatelab.views.colours import sequence_colours
from gatelab.views.gallery import Panel, boundary_gallery

log = logging.getLogger(__name__)

SUMMARY_FILE = "sweep_summary.csv"
# The parent's gallery: a row per cell (at most this many), a panel per seed (at most this many).
GALLERY_ROWS = 8
GALLERY_COLUMNS = 10
# Past this many curves, `loss_curves.png` is a median and quartile band per cell.
MAX_OVERLAID_CURVES = 100
# A gallery's PNG, compressed lightly: a cell's 40 panels encode in half the time (0.2 s), in a
# file 45% larger (about 1.8 MB).
GALLERY_PNG = {"pil_kwargs": {"compress_level": 1}}
GALLERY = "decision_boundaries.png"


@dataclass(frozen=True)
class ParentRun:
    """A sweep's parent run, its cells' runs by cell name, and where its summary goes."""

    client: MlflowClient
    run_id: str
    swept: list[str]
    command: str
    sweep_dir: Path
    cells: dict[str, str] = field(default_factory=dict)
    # The jobs the command makes, if known: a stopped sweep says how many it recorded.
    planned: int | None = None


def publish(parent: ParentRun, results: list[JobResult], interrupted: bool = False) -> Path:
    """Print the summary, write it as CSV in the sweep folder, log it with its figures, and
    give each cell its numbers and figures and end it; return the CSV's path."""
    rows = summary_rows(results, parent.swept)
    parent.sweep_dir.mkdir(parents=True, exist_ok=True)
    summary_path = parent.sweep_dir / SUMMARY_FILE
    with summary_path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else ["job"])
        writer.writeheader()
        writer.writerows(rows)
    lines = cell_lines(results, parent.swept)
    log.info(
        "sweep summary (%d jobs):\n%s",
        len(rows),
        console_summary(rows, lines, str(summary_path)),
    )
    parent.client.log_artifact(parent.run_id, str(summary_path))
    metrics = sweep_metrics(results, parent.swept)
    log.info("%s", outcome_line(metrics))
    stopped = stopped_line(results, parent.planned, str(parent.sweep_dir)) if interrupted else ""
    if stopped:
        log.warning("%s", stopped)
    log_metrics(parent.client, parent.run_id, metrics)
    experiment_id = parent.client.get_run(parent.run_id).info.experiment_id
    link = children_url(experiment_id, parent.run_id)
    text = description(results, parent.swept, metrics, parent.run_id, parent.command, link)
    parent.client.set_tag(
        parent.run_id, "mlflow.note.content", f"**{stopped}**\n\n{text}" if stopped else text
    )
    arrays = None
    if interrupted:
        # A stop ends within seconds (drawing took 5 s of a 2,000-job sweep's): the figures
        # come with the summary of the run of the same command that finishes the sweep.
        log.info("no figures for a stopped sweep: they come when it is finished")
    else:
        kept = SweepArrays.load(parent.sweep_dir)
        arrays = JobArrays(parent.client, kept.losses, kept.boundaries)
        for figure_name, figure in figures(parent, results, arrays).items():
            save = GALLERY_PNG if figure_name == GALLERY else None
            parent.client.log_figure(parent.run_id, figure, figure_name, save_kwargs=save)
    publish_cells(parent, results, interrupted, arrays)
    return summary_path


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float]) -> None:
    timestamp = int(time.time() * 1000)
    client.log_batch(
        run_id, metrics=[Metric(key, value, timestamp, 0) for key, value in metrics.items()]
    )


def publish_cells(
    parent: ParentRun,
    results: list[JobResult],
    interrupted: bool,
    arrays: JobArrays | None,
) -> None:
    """Each cell's numbers (`group_metrics`), gallery and loss band (none without `arrays`),
    then its end.

    A cell's jobs are the runs that are its children: the cell is named by its jobs' overrides
    as typed (`lr=1`), their values by their params as configured (`1.0`).
    """
    cells = cells_of(results, parent.swept)
    children: dict[str, list[JobResult]] = {}
    for result in results:
        children.setdefault(result.parent_run_id, []).append(result)
    colours = cell_colours(list(cells), list(parent.cells))
    for name, run_id in parent.cells.items():
        jobs = children.get(run_id) or cells.get(name, [])
        metrics = group_metrics(jobs)
        log_metrics(parent.client, run_id, metrics)
        parent.client.set_tag(run_id, COLOUR_TAG, colours[name])
        if arrays is not None:
            boundaries = gallery({name: jobs[:CELL_GALLERY_JOBS]}, jobs, arrays, name)
            if boundaries is not None:
                parent.client.log_figure(run_id, boundaries, GALLERY, save_kwargs=GALLERY_PNG)
            curves = [arrays.loss(result) for result in jobs]
            title = f"loss of {len(jobs)} seeds: {name}"
            band = sweep_figures.loss_bands({name: curves}, title, [colours[name]])
            parent.client.log_figure(run_id, band, "loss_band.png")
        parent.client.set_terminated(run_id, sweep_status(jobs, interrupted))


def cell_colours(ordered: list[str], names: list[str]) -> dict[str, str]:
    """Each cell's colour (`COLOUR_TAG`) by name: its own, in the order of its values (the
    cells of `ordered`, then those that have no job yet), as the figures colour them."""
    order = [*ordered, *(name for name in names if name not in ordered)]
    return dict(zip(order, sequence_colours(len(order)), strict=True))


def figures(
    parent: ParentRun,
    results: list[JobResult],
    arrays: JobArrays,
) -> dict[str, Figure]:
    """The parent's PNGs by file name: success rates, loss curves, epochs to solve, boundaries."""
    compared = [key for key in parent.swept if key != SEED_KEY]
    pngs = {}
    for key in compared:
        values, solved, jobs = success_counts(results, key)
        bounds = [wilson_interval(count, total) for count, total in zip(solved, jobs, strict=True)]
        pngs[f"success_rate_by_{key}.png"] = sweep_figures.success_rate_bars(
            values, solved, jobs, key, [(bound.low, bound.high) for bound in bounds if bound]
        )
    if len(compared) >= 2:
        rows, columns, rates, intervals = success_grid(results, compared[0], compared[1])
        name = f"success_rate_{compared[0]}_x_{compared[1]}.png"
        pngs[name] = sweep_figures.success_heatmap(
            rows, columns, rates, compared[0], compared[1], intervals
        )
    colour_key = (
        "optimizer.learning_rate"
        if "optimizer.learning_rate" in compared
        else (compared[0] if compared else None)
    )
    curves = [arrays.loss(result) for result in results]
    cells = cells_of(results, parent.swept)
    if cells and len(results) > MAX_OVERLAID_CURVES:
        by_run = dict(zip((result.run_id for result in results), curves, strict=True))
        pngs["loss_curves.png"] = sweep_figures.loss_bands(
            {name: [by_run[job.run_id] for job in jobs] for name, jobs in cells.items()},
            f"loss of {len(results)} jobs, per cell",
        )
    else:
        colour_values = (
            [result.values.get(colour_key, "") for result in results] if colour_key else None
        )
        pngs["loss_curves.png"] = sweep_figures.overlaid_loss_curves(
            curves,
            colour_values,
            colour_key,
            distinct=sorted(set(colour_values or [""]), key=numeric_first),
        )
    group_key = colour_key or SEED_KEY
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
    rows = gallery_rows(results, parent.swept)
    boundaries = gallery(rows, results, arrays)
    if boundaries is not None:
        pngs[GALLERY] = boundaries
    return pngs


def gallery_rows(results: list[JobResult], swept: list[str]) -> dict[str, list[JobResult]]:
    """The parent gallery's rows: a cell's seeds per row, else a row per value of the first key."""
    cells = cells_of(results, swept)
    if cells:
        rows = cells
    else:
        keys = swept[:1]
        rows = {}
        ordered = sorted(
            results, key=lambda result: [numeric_first(result.values[key]) for key in swept]
        )
        for result in ordered:
            label = ", ".join(f"{key}={result.values[key]}" for key in keys if key != SEED_KEY)
            rows.setdefault(label, []).append(result)
    return {
        label: members[:GALLERY_COLUMNS] for label, members in list(rows.items())[:GALLERY_ROWS]
    }


def gallery(
    rows: dict[str, list[JobResult]],
    results: list[JobResult],
    arrays: JobArrays,
    name: str = "",
) -> Figure | None:
    """`decision_boundaries.png`: a panel per job of `rows`, out of all `results`, with a
    footnote saying how many it shows when not every one.

    Args:
        name: what the jobs are (a cell's name), for the title.
    """
    groups: dict[str, list[Panel]] = {}
    shown: list[JobResult] = []
    table = None
    for label, members in rows.items():
        for result in members:
            found = arrays.boundary(result)
            if not found:
                continue
            table = found
            view = BoundaryView(
                outputs=found["outputs"].astype(np.float32),
                hidden_lines=found["hidden_lines"],
            )
            title = (
                f"{SEED_KEY}={result.values[SEED_KEY]}"
                if SEED_KEY in result.values
                else result.name
            )
            groups.setdefault(label, []).append(Panel(title, view, result.solved))
            shown.append(result)
    if table is None:
        return None
    footnote = ""
    if len(shown) < len(results):
        shown_ids = {result.run_id for result in shown}
        rest = [result for result in results if result.run_id not in shown_ids]
        footnote = (
            f"a sample: {len(shown)} of {len(results)} jobs shown; the other {len(rest)}: "
            f"{sum(result.solved for result in rest)} solved (see sweep_summary.csv)"
        )
    solved = sum(result.solved for result in results)
    return boundary_gallery(
        groups,
        table["inputs"],
        table["targets"],
        f"decision boundaries{f' of {name}' if name else ''}: {solved}/{len(results)} jobs solved",
        footnote,
        # A cell's own gallery of 40 seeds: rows of GALLERY_COLUMNS.
        per_row=GALLERY_COLUMNS,
    )
