"""A finished sweep's summary, published: on the console, as `sweep_summary.csv` in the sweep
folder, on the parent run (metrics, a Markdown description, figures) and on each cell's run."""

import csv
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from gatelab.sweeps import drawn_ahead
from gatelab.sweeps.description import description
from gatelab.sweeps.results import JobArrays
from gatelab.sweeps.summary import (
    JobResult,
    cell_lines,
    cells_of,
    console_summary,
    group_metrics,
    outcome_line,
    stopped_line,
    summary_rows,
    sweep_metrics,
    sweep_status,
)
from gatelab.sweeps.summary_figures import (
    PARENT,
    cell_colours,
    cell_jobs,
    save_kwargs,
    summary_figures,
)
from gatelab.sweeps.sweep_folder import SweepArrays
from gatelab.tracking.links import children_url
from gatelab.tracking.records import COLOUR_TAG

log = logging.getLogger(__name__)

SUMMARY_FILE = "sweep_summary.csv"


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
    if interrupted:
        # A stop ends within seconds (drawing took 5 s of a 2,000-job sweep's): the figures
        # come with the summary of the run of the same command that finishes the sweep.
        log.info("no figures for a stopped sweep: they come when it is finished")
        drawn_ahead.discard(parent.run_id, parent.sweep_dir)
    else:
        log_figures(parent, results)
    publish_cells(parent, results, interrupted)
    return summary_path


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float]) -> None:
    timestamp = int(time.time() * 1000)
    client.log_batch(
        run_id, metrics=[Metric(key, value, timestamp, 0) for key, value in metrics.items()]
    )


def log_figures(parent: ParentRun, results: list[JobResult]) -> None:
    """Log the summary's figures onto the parent's run and each cell's: as drawn ahead while
    the children were written (`drawn_ahead`), or drawn now from the sweep folder's arrays."""
    target_runs = {PARENT: parent.run_id, **parent.cells}
    drawn = drawn_ahead.take(parent.run_id, parent.swept, parent.cells, results)
    try:
        if drawn is not None:
            for target, files in drawn.items():
                for path in files.values():
                    parent.client.log_artifact(target_runs[target], str(path))
            return
        kept = SweepArrays.load(parent.sweep_dir)
        arrays = JobArrays(parent.client, kept.losses, kept.boundaries)
        for target, name, figure in summary_figures(parent.swept, parent.cells, results, arrays):
            parent.client.log_figure(
                target_runs[target], figure, name, save_kwargs=save_kwargs(name)
            )
    finally:
        drawn_ahead.discard(parent.run_id, parent.sweep_dir)


def publish_cells(parent: ParentRun, results: list[JobResult], interrupted: bool) -> None:
    """Each cell's numbers (`group_metrics`) and colour, then its end (its figures are logged
    with the parent's: `log_figures`)."""
    jobs_of = cell_jobs(parent.swept, parent.cells, results)
    colours = cell_colours(list(cells_of(results, parent.swept)), list(parent.cells))
    for name, run_id in parent.cells.items():
        jobs = jobs_of[name]
        log_metrics(parent.client, run_id, group_metrics(jobs))
        parent.client.set_tag(run_id, COLOUR_TAG, colours[name])
        parent.client.set_terminated(run_id, sweep_status(jobs, interrupted))
