"""A population's jobs from one composed config: check their values, train them together, and
record each as the child run a per-job sweep would log (`tracking.records`)."""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from gatelab.build import Built, build
from gatelab.engine import population
from gatelab.engine.models import boundary_view, layer_weights
from gatelab.errors import ConfigError
from gatelab.sweeps import drawn_ahead
from gatelab.sweeps.cells import cell_name
from gatelab.sweeps.members import VALUE_KEYS, ValueChecker, train_members
from gatelab.sweeps.progress import Progress
from gatelab.sweeps.results import hold
from gatelab.sweeps.summary import CELL_GALLERY_JOBS, cell_keys
from gatelab.sweeps.sweep_folder import LOSSES_FILE, MEMBERS_FILE, Sweep, SweepArrays
from gatelab.sweeps.sweeper import Timings
from gatelab.sweeps.vectorized.job_folders import JobFolders
from gatelab.tracking import children, records
from gatelab.tracking.experiment import configure
from gatelab.tracking.naming import config_params, user_tags

log = logging.getLogger(__name__)

# Where a trained member's arrays are (its `weights` and `predictions` tags, when short enough).
ARRAYS_TAG = "arrays"
ARRAYS_POINTER = (
    f"the parent run's {MEMBERS_FILE} (weights, outputs: the row of this run id in "
    f"<group>/run_ids) and {LOSSES_FILE} (the loss of every epoch, under this run id)"
)


def member_description(job_folder: Path | None) -> str:
    """A member's run description (its Overview page): where its arrays are and how to get its
    Keras model and figures; `records.RUN_ID_FIELD` stands for its run id.

    Args:
        job_folder: a job's folder of the sweep (`<sweep folder>/<job number>`).
    """
    folder = f"`{job_folder.parent.absolute()}`" if job_folder is not None else "of the sweep"
    return (
        "Trained with the rest of its vectorized sweep, so this run logged no file. Its loss at "
        f"every epoch is in `{LOSSES_FILE}` (under this run's id), its final weights and outputs "
        f"in `{MEMBERS_FILE}`: both in the sweep folder {folder} and on the sweep's run. For its "
        "Keras model and figures, re-run it alone (from the folder the sweep ran in): "
        f"`python -m gatelab.runs rerun {records.RUN_ID_FIELD}`"
    )


@dataclass(frozen=True)
class MemberJob:
    """One job of a population: Hydra's view of it, and its values of `VALUE_KEYS` as typed."""

    job: records.Job
    values: dict[str, Any]


@dataclass(frozen=True)
class JobOutcome:
    """A job's end: the final loss it returns to Hydra, or the error it failed with."""

    job: records.Job
    loss: float | None = None
    error: BaseException | None = None


@dataclass
class Recorded:
    """What a sweep's populations have written, kept as it is written: a stop loses none of it.

    Args:
        arrays: the written members' loss curves, weights and outputs, and the boundaries of
            those a gallery shows, by child run id (`sweep_folder.SweepArrays`).
        written: child runs written.
        trained: jobs trained (or failed on a bad value), written or not.
    """

    arrays: SweepArrays = field(default_factory=SweepArrays)
    written: int = 0
    trained: int = 0


def train_and_write(
    cfg: DictConfig,
    jobs: list[MemberJob],
    progress: Progress,
    recorded: Recorded,
    runs_per_transaction: int,
    timings: Timings,
    after_training: Callable[[], None] = lambda: None,
    whole_sweep: Sweep | None = None,
) -> list[JobOutcome]:
    """A population's jobs, wherever it runs (the sweep's process, or a shard's): their folders
    written while it trains, then each logged as a child (`run_population`).

    Args:
        cfg: the population's config, as its jobs' task function sees it.
        after_training: called once the members are trained, before any child is written.
        whole_sweep: the sweep, when these jobs are every job of it: its summary's figures are
            drawn while the children are written (`drawn_ahead`).
    """
    # Written while the population trains (files, then TensorFlow's threads: the two share the
    # cores); its runs wait for them, as a child's `hydra.output_dir` is a folder that exists.
    # "write folders" is the time they wait, if any.
    folders = in_background(
        JobFolders(cfg, VALUE_KEYS).write,
        [(member.job.output_dir, member.job.overrides, member.values) for member in jobs],
    )

    def before_writing() -> None:
        after_training()
        with timings.timed("write folders"):
            folders()

    with timings.timed("train and log"):
        return run_population(
            cfg, jobs, progress, recorded, runs_per_transaction, before_writing, whole_sweep
        )


def in_background(function: Callable[..., None], *args: Any) -> Callable[[], None]:
    """Start `function(*args)` in a thread; the function returned waits for it and raises what
    it raised. A daemon thread: a stopped sweep does not wait for it to end."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            function(*args)
        except BaseException as error:  # raised in the caller's thread, by `wait`
            errors.append(error)

    thread = threading.Thread(target=run, name=getattr(function, "__qualname__", "background"))
    thread.daemon = True
    thread.start()

    def wait() -> None:
        thread.join()
        if errors:
            raise errors[0]

    return wait


def run_population(
    cfg: DictConfig,
    jobs: list[MemberJob],
    progress: Progress,
    recorded: Recorded,
    runs_per_transaction: int = children.BATCH,
    before_writing: Callable[[], None] = lambda: None,
    whole_sweep: Sweep | None = None,
) -> list[JobOutcome]:
    """Train `jobs` (configs `cfg` with their values) as one population; log each as a child
    (after `before_writing` returns: the sweeper's job folders, written meanwhile). When they
    are every job of `whole_sweep`, its summary's figures are drawn meanwhile (`drawn_ahead`).

    Returns each job's outcome, in the order of `jobs`. Adds to `recorded`, as each child is
    written, its full loss curve and (for the members a gallery shows) its decision boundary.
    """
    checker = ValueChecker(cfg)
    outcomes: dict[int, JobOutcome] = {}
    valid: list[tuple[MemberJob, dict[str, Any]]] = []
    for member in jobs:
        try:
            valid.append((member, checker.member_values(member.values)))
        except ConfigError as error:
            outcomes[member.job.number] = JobOutcome(member.job, error=error)

    members = train_members(cfg, [values for _, values in valid], progress) if valid else None
    built = members.built if members is not None else build(cfg)
    history = members.history if members is not None else None
    before_writing()

    started = time.perf_counter()
    experiment_id = configure(cfg.tracking.uri, cfg.tracking.experiment, jobs[0].job.experiment_id)
    base_params = config_params(cfg)
    tags = user_tags(list(cfg.tags))
    gate = OmegaConf.select(cfg, "dataset.gate", default=None)

    def name_of(job: records.Job) -> str:
        return records.run_name(job, f"{built.model.name}-{records.dataset_name(job, gate)}")

    run_records = [
        records.failed(
            member.job,
            name=name_of(member.job),
            params={**base_params, **{key: str(value) for key, value in member.values.items()}},
            user_tags=tags,
            error=outcomes[member.job.number].error,
        )
        for member in jobs
        if member.job.number in outcomes
    ]
    layers = layer_weights(built.model)
    times = member_times(history, members.started, members.ended) if members is not None else []
    epochs, max_loss_points = cfg.trainer.epochs, cfg.tracking.max_loss_points
    # The jobs of a population share their sweep's folder.
    description = member_description(jobs[0].job.output_dir)
    for index, (member, values) in enumerate(valid):
        member_history = history.member(index)
        params = {key: str(value) for key, value in values.items() if key in base_params}
        run_records.append(
            records.trained(
                member.job,
                name=name_of(member.job),
                params={**base_params, **params},
                user_tags={**tags, ARRAYS_TAG: ARRAYS_POINTER},
                history=member_history,
                outputs=history.outputs[index],
                inputs=built.dataset.inputs,
                targets=built.dataset.targets,
                layers=layers,
                weights=members.weights(index),
                epochs=epochs,
                max_loss_points=max_loss_points,
                dataset=records.dataset_name(member.job, gate),
                start_time=times[index][0],
                end_time=times[index][1],
                description=description,
            )
        )
        outcomes[member.job.number] = JobOutcome(member.job, loss=members.loss(index))

    recorded.trained += len(jobs)
    swept = jobs[0].job.swept
    index_of = {member.job.number: index for index, (member, _) in enumerate(valid)}
    boundaries = {
        member.job.number: boundary_arrays(built, members.weights(index))
        for index, member in gallery_members(valid)
    }
    if whole_sweep is not None:
        losses = {member.job.number: history.member(i).loss for i, (member, _) in enumerate(valid)}
        sweep_dir = jobs[0].job.output_dir.parent
        drawn_ahead.start_from_records(whole_sweep, sweep_dir, run_records, losses, boundaries)
    total = len(run_records)
    written = 0
    record_of = {record.job_number: record for record in run_records}

    def on_written(run_ids: dict[int, str]) -> None:
        nonlocal written
        written += len(run_ids)
        recorded.written += len(run_ids)
        # The summary's rows, as written: not read back from the store (`sweeps.results`).
        hold([(record_of[number], run_id) for number, run_id in run_ids.items()], swept)
        trained = [(number, run_id) for number, run_id in run_ids.items() if number in index_of]
        if trained:
            recorded.arrays.members[str(len(recorded.arrays.members))] = member_arrays(
                layers, history, [(run_id, index_of[number]) for number, run_id in trained]
            )
        for number, run_id in trained:  # the others failed on a bad value: nothing trained
            index = index_of[number]
            recorded.arrays.losses[run_id] = history.member(index).loss
            if number in boundaries:
                recorded.arrays.boundaries[run_id] = boundaries[number]
        progress.show(logging_progress(written, total, time.perf_counter() - started))

    children.child_store().write_all(
        experiment_id, run_records, on_written=on_written, batch=runs_per_transaction
    )
    seconds = time.perf_counter() - started
    log.info(
        "logged %d child runs in %.2f s (%.1f ms each)",
        total,
        seconds,
        1000 * seconds / max(total, 1),
    )
    return [outcomes[member.job.number] for member in jobs]


def logging_progress(written: int, total: int, seconds: float) -> str:
    """The progress line of a population's child runs: how many are logged of `total` after
    `seconds`, at what rate, and (once one is) how long the rest will take."""
    if written <= 0:
        return f"child runs logged: 0/{total}"
    rate = written / max(seconds, 1e-9)
    eta = (total - written) / rate
    return f"child runs logged: {written}/{total} ({rate:.0f}/s, ETA {eta:.0f} s)"


def member_times(
    history: population.PopulationHistory, started: int, ended: int
) -> list[tuple[int, int]]:
    """Each member's (start, end) in ms: its share of the population's training time, in
    proportion to the epochs it ran; starts a millisecond apart, so the UI lists them in order."""
    epochs = history.epochs_run.astype(float)
    shares = (ended - started) * epochs / max(epochs.sum(), 1.0)
    return [
        (started + index, started + index + max(1, round(share)))
        for index, share in enumerate(shares)
    ]


def gallery_members(valid: list[tuple[MemberJob, dict[str, Any]]]) -> list[tuple[int, MemberJob]]:
    """The members a sweep's galleries show: each cell's first `CELL_GALLERY_JOBS`, by index."""
    shown: list[tuple[int, MemberJob]] = []
    per_cell: dict[str, int] = {}
    for index, (member, _) in enumerate(valid):
        cell = cell_name(member.job.overrides, cell_keys(member.job.swept))
        if per_cell.get(cell, 0) < CELL_GALLERY_JOBS:
            per_cell[cell] = per_cell.get(cell, 0) + 1
            shown.append((index, member))
    return shown


def member_arrays(
    layers: list[tuple[str, list[str]]],
    history: population.PopulationHistory,
    rows: list[tuple[str, int]],
) -> dict[str, np.ndarray]:
    """The final weights and outputs of the members at `rows` (child run id, member index), a
    row each: the group `sweeps.sweep_folder.MEMBERS_FILE` keeps."""
    indices = [index for _, index in rows]
    names = [f"{layer}/{weight}" for layer, weights in layers for weight in weights]
    arrays = {"run_ids": np.array([run_id for run_id, _ in rows])}
    for name, weight in zip(names, history.weights, strict=True):
        arrays[name] = np.asarray(weight)[indices]
    arrays["output"] = np.asarray(history.outputs)[indices][..., 0]
    return arrays


def boundary_arrays(built: Built, weights: list[np.ndarray]) -> dict[str, np.ndarray]:
    """A member's final decision boundary as a single run's `boundary.npz` holds it."""
    if built.dataset.n_inputs != 2:
        return {}
    view = boundary_view(built.model, weights)
    return {
        "outputs": view.outputs.astype(np.float16),
        "hidden_lines": view.hidden_lines,
        "inputs": built.dataset.inputs,
        "targets": built.dataset.targets,
    }
