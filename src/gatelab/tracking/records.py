"""One definition of a job's MLflow run, whichever sweeper (or none) made it.

A run's name, tags, params, metric points, weights and predictions layout and its FAILED form
are built here and nowhere else: the per-job path (`gatelab.pipeline`) logs a `RunRecord`
through MLflow's fluent API as it trains, the vectorized sweeper writes the same record through
the client (`writer`), and the sweep callback writes the FAILED record of a job that never
started. A test holds the per-job and the vectorized record of the same job equal.
"""

import functools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mlflow.entities import Metric
from mlflow.tracking.context.registry import resolve_tags

from gatelab.history import History, outcome_metrics
from gatelab.redaction import redact
from gatelab.tracking.naming import child_run_name, overrides_text, single_run_name, swept_values
from gatelab.tracking.statuses import FAILED, FINISHED, KILLED, RUNNING  # noqa: F401 (re-used as records.*)
from gatelab.tracking.store import process_tags

# On every job of a sweep: its parent run, one filter for all its jobs whatever their cell.
SWEEP_TAG = "gatelab.sweep"
# The colour of a run's dot in the UI's runs table and of its marks in the Chart view: a job's
# green when it solved, red when not; a sweep's cells and a study's trials, told apart in a chart
# by colour alone, each their own (`views.colours`).
COLOUR_TAG = "mlflow.runColor"
SOLVED_COLOUR = (0x1A, 0x7F, 0x37)
UNSOLVED_COLOUR = (0xB4, 0x23, 0x18)
# The `failure_reason` of a run whose loss became infinite or NaN: it trained to its end.
DIVERGED = "diverged"
# The tag of a run's description, Markdown shown on its Overview page in the UI.
DESCRIPTION_TAG = "mlflow.note.content"
# Where a record's description names its own run id, filled in as the run is written.
RUN_ID_FIELD = "{run_id}"


@dataclass(frozen=True)
class Job:
    """A job as Hydra describes it; the defaults describe a direct call without Hydra.

    Args:
        overrides: the command-line overrides, kept as a tag (and a single run's name).
        choices: the chosen option of each config group, kept as tags.
        output_dir: the job's output folder; its `.hydra` config files become artifacts.
        parent_run_id: the run this one is a child of, in a sweep: its cell's, else the sweep's.
        number: the job's number in its sweep.
        swept: the keys its sweep varies; a job in a sweep is named by their values.
        sweep_run_id: the sweep's parent run (tag `gatelab.sweep`, whatever the cell).
        experiment_id: the sweep's experiment; None: `tracking.experiment`.
    """

    overrides: list[str] = field(default_factory=list)
    choices: dict[str, str] = field(default_factory=dict)
    output_dir: Path | None = None
    parent_run_id: str | None = None
    number: int = 0
    swept: list[str] = field(default_factory=list)
    sweep_run_id: str | None = None
    experiment_id: str | None = None


@dataclass(frozen=True)
class RunRecord:
    """A job's run: what it is created with, then what it logs, and how it ends.

    Args:
        tags: set when the run is created (its identity: Hydra's tags, the parent, the host).
        result_tags: set at the end (`failure_reason`, `error`).
        outcome: the final metrics, at step 0 (`accuracy`, `solved`, `epochs_to_solve`).
        loss_points: metric `loss` as (epoch, loss) pairs, at most `max_loss_points`.
        weights: every kernel and bias by layer (`weights.json`).
        predictions: inputs, target and output per row, by column (`predictions.json`).
        dataset: the name of its input, the truth table (the runs table's Dataset column).
        start_time, end_time: when it trained, in ms; None: when it is written.
        description: its description, `RUN_ID_FIELD` standing for its run id (`description_tags`).
    """

    job_number: int
    name: str
    tags: dict[str, str]
    params: dict[str, str]
    status: str = FINISHED
    result_tags: dict[str, str] = field(default_factory=dict)
    outcome: dict[str, float] = field(default_factory=dict)
    loss_points: list[tuple[int, float]] = field(default_factory=list)
    weights: dict[str, dict[str, list]] | None = None
    predictions: dict[str, list] | None = None
    dataset: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    description: str | None = None

    def metrics(self, timestamp: int | None = None) -> list[Metric]:
        """Every metric point of the run, as MLflow's `Metric`s (see `metric_points`)."""
        return [Metric(*point) for point in self.metric_points(timestamp)]

    def metric_points(self, timestamp: int | None = None) -> list[tuple[str, float, int, int]]:
        """Every metric point of the run, (key, value, timestamp, step): the loss points, then
        the outcome at step 0.

        Each point lies within the run, where MLflow's wall-time and relative-time chart axes
        put it: the loss of epoch e at e/E of the way from `start_time` to `end_time` (E: the
        last loss point's epoch), the outcome at `end_time`. A time the record does not hold is
        `timestamp` (by default now: the run is being written, or still open).
        """
        now = int(time.time() * 1000) if timestamp is None else timestamp
        start = now if self.start_time is None else self.start_time
        end = now if self.end_time is None else self.end_time
        last_epoch = max((epoch for epoch, _ in self.loss_points), default=1) or 1
        points = [
            ("loss", loss, start + (end - start) * epoch // last_epoch, epoch)
            for epoch, loss in self.loss_points
        ]
        return points + [(key, value, end, 0) for key, value in self.outcome.items()]


def description_tags(record: RunRecord, run_id: str) -> dict[str, str]:
    """The record's description as the tag of its run `run_id`, its id filled in (none without)."""
    if not record.description:
        return {}
    return {DESCRIPTION_TAG: record.description.replace(RUN_ID_FIELD, run_id)}


def run_name(job: Job, default: str) -> str:
    """A job in a sweep is named by its swept values; a single run by its overrides."""
    if job.swept:
        return child_run_name(swept_values(job.overrides, job.swept))
    return single_run_name(job.overrides) or redact(default)


def run_tags(job: Job, user_tags: dict[str, str]) -> dict[str, str]:
    """The tags a job's run is created with: Hydra's view of it, the user's, parent and host."""
    tags = {
        "hydra.overrides": overrides_text(job.overrides),
        "hydra.job.num": str(job.number),
    }
    if job.output_dir is not None:
        tags["hydra.output_dir"] = str(job.output_dir)
    for group, option in job.choices.items():
        if not group.startswith("hydra/"):
            tags[f"hydra.choices.{group}"] = str(option)
    tags.update(user_tags)
    if job.parent_run_id is not None:
        tags["mlflow.parentRunId"] = job.parent_run_id
    if job.sweep_run_id is not None:
        tags[SWEEP_TAG] = job.sweep_run_id
    # Where it runs, for `python -m gatelab.runs mark-dead-killed`.
    tags.update(process_tags())
    return {key: _redacted(value) for key, value in tags.items()}


@functools.lru_cache(maxsize=10_000)
def _redacted(value: str) -> str:
    # Cached: a sweep's jobs share most of their tags' values (choices, parent, sweep, host).
    return redact(value)


@functools.cache
def context_tags() -> dict[str, str]:
    """What `mlflow.start_run` tags a run with from where it runs (`mlflow.user`,
    `mlflow.source.name`, `mlflow.source.type`, `mlflow.source.git.*`): a record is written by
    a writer, not started, so it gets them here, read once a process (git is asked once)."""
    return {key: redact(str(value)) for key, value in resolve_tags().items()}


def record_tags(job: Job, user_tags: dict[str, str]) -> dict[str, str]:
    """The tags of a job's run written as a record: `run_tags` over `context_tags`."""
    return {**context_tags(), **run_tags(job, user_tags)}


def dataset_name(job: Job, gate: str | None) -> str:
    """The name of a run's dataset: its `dataset` option (`xor`, `custom`), else the gate's."""
    return job.choices.get("dataset") or gate or "data"


def outcome_colour(success_rate: float) -> str:
    """`COLOUR_TAG`'s value for a run that solved at this rate (1: solved, 0: not)."""
    channels = (
        round(unsolved + (solved - unsolved) * success_rate)
        for solved, unsolved in zip(SOLVED_COLOUR, UNSOLVED_COLOUR, strict=True)
    )
    return "#" + "".join(f"{channel:02x}" for channel in channels)


def loss_steps(epochs: int, epochs_run: int, max_points: int) -> np.ndarray:
    """The epochs (1-based) whose loss becomes a point of metric `loss`: at most `max_points`.

    Every ceil(epochs / max_points)-th epoch and always the last one run; with `max_points` 0
    only the last, the final loss.
    """
    stride = math.ceil(epochs / max_points) if max_points else epochs
    steps = np.arange(stride, epochs_run + 1, stride)
    if not steps.size or steps[-1] != epochs_run:
        steps = np.append(steps, epochs_run)
    return steps


def loss_points(loss: np.ndarray, *, epochs: int, max_points: int) -> list[tuple[int, float]]:
    """Metric `loss` at step = epoch (1-based), at most `max_points` epochs (see `loss_steps`).

    A run that diverged ends at its last finite loss: MLflow would store an infinite one as
    1.79769e+308, and `failure_reason: diverged` says what happened.
    """
    finite = np.flatnonzero(np.isfinite(loss))
    if not finite.size:
        return []
    steps = loss_steps(epochs, int(finite[-1]) + 1, max_points)
    # As Python numbers, the whole array at once: a sweep makes this list for each of its jobs.
    values = np.asarray(loss, dtype=float)[steps - 1]
    return list(zip(steps.tolist(), values.tolist(), strict=True))


def weights_layout(
    layers: list[tuple[str, list[str]]], arrays: list[np.ndarray]
) -> dict[str, dict[str, list]]:
    """Every kernel and bias by layer name, as the chapter prints `model.weights`.

    Args:
        layers: each layer's name and its weights' names, in `model.weights` order.
        arrays: the weights' values, in the same order.
    """
    values = iter(arrays)
    return {
        layer: {name: np.asarray(next(values)).tolist() for name in names}
        for layer, names in layers
    }


def predictions_columns(
    inputs: np.ndarray, targets: np.ndarray, outputs: np.ndarray
) -> dict[str, list]:
    """Inputs, target and output per row, as the columns of table `predictions.json`."""
    return {
        "inputs": inputs.tolist(),
        "target": targets[:, 0].tolist(),
        "output": outputs[:, 0].tolist(),
    }


def table_json(columns: dict[str, list]) -> str:
    """Columns as MLflow serialises a table (`mlflow.log_table`): column names, then rows."""
    rows = [list(row) for row in zip(*columns.values(), strict=True)]
    return json.dumps({"columns": list(columns), "data": rows})


def trained(
    job: Job,
    *,
    name: str,
    params: dict[str, str],
    user_tags: dict[str, str],
    history: History,
    outputs: np.ndarray,
    inputs: np.ndarray,
    targets: np.ndarray,
    layers: list[tuple[str, list[str]]],
    weights: list[np.ndarray],
    epochs: int,
    max_loss_points: int,
    dataset: str,
    start_time: int | None = None,
    end_time: int | None = None,
    description: str | None = None,
) -> RunRecord:
    """The run of a job that trained: FINISHED, or FAILED with `failure_reason` when it diverged.

    Args:
        name: the run's name, `run_name(job, ...)`.
        params: the job's config as params (`naming.config_params` of its config).
        outputs: the trained model's output per row.
        layers: each layer's name and its weights' names; `weights` holds their final values.
        epochs: the epochs asked for; `history` holds fewer when training diverged.
        dataset: the dataset's name (`dataset_name`).
        start_time, end_time: when it trained (ms), if not when it is written.
        description: its run's description (`RunRecord.description`).
    """
    outcome = outcome_metrics(outputs, targets, history)
    result_tags = {COLOUR_TAG: outcome_colour(outcome["solved"])}
    if history.diverged:
        result_tags["failure_reason"] = DIVERGED
    return RunRecord(
        job_number=job.number,
        name=name,
        tags=record_tags(job, user_tags),
        params=params,
        status=FAILED if history.diverged else FINISHED,
        result_tags=result_tags,
        outcome=outcome,
        loss_points=loss_points(history.loss, epochs=epochs, max_points=max_loss_points),
        weights=weights_layout(layers, weights),
        predictions=predictions_columns(inputs, targets, outputs),
        dataset=dataset,
        start_time=start_time,
        end_time=end_time,
        description=description,
    )


def failed(
    job: Job, *, name: str, params: dict[str, str], user_tags: dict[str, str], error: BaseException
) -> RunRecord:
    """The run of a job refused before it trained (a bad value): its params and the error."""
    return RunRecord(
        job_number=job.number,
        name=name,
        tags=record_tags(job, user_tags),
        params=params,
        status=FAILED,
        result_tags=error_tags(error),
    )


def error_tags(error: BaseException) -> dict[str, str]:
    """Tags of a run that raised: the sweep summary reads `failure_reason`, people `error`."""
    return {"failure_reason": "error", "error": redact(f"{type(error).__name__}: {error}")}
