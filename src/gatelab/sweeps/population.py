"""A population's jobs from one composed config: check their values, train them together, and
record each as the child run a per-job sweep would log (`tracking.records`)."""

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from gatelab.build import Built, build
from gatelab.config import validate
from gatelab.engine import population
from gatelab.engine.models import boundary_view, layer_weights
from gatelab.errors import ConfigError, one_line
from gatelab.sweeps.cells import cell_name
from gatelab.sweeps.progress import Progress
from gatelab.sweeps.summary import CELL_GALLERY_JOBS, cell_keys
from gatelab.sweeps.sweep_folder import LOSSES_FILE, MEMBERS_FILE
from gatelab.tracking import children, records
from gatelab.tracking.experiment import configure
from gatelab.tracking.naming import config_params, user_tags

log = logging.getLogger(__name__)

# The overrides a population's members may differ in; any other override is structural and
# gets its own composed config (and population).
VALUE_KEYS = ("seed", "optimizer.learning_rate", "optimizer.momentum")
# What a vectorized sweep changes in its jobs' configs unless the command line sets it: no Keras
# model or PNG per child (re-run a job alone to get them), a coarse `loss` metric per child
# (every member's full curve is in the parent's `losses.npz`).
SWEEP_DEFAULTS = {
    "tracking.log_model": False,
    "tracking.log_figures": False,
    "tracking.max_loss_points": 50,
}
# Where a trained member's arrays are (its `weights` and `predictions` tags, when short enough).
ARRAYS_TAG = "arrays"
ARRAYS_POINTER = (
    f"the parent run's {MEMBERS_FILE} (weights, outputs: the row of this run id in "
    f"<group>/run_ids) and {LOSSES_FILE} (the loss of every epoch, under this run id)"
)
# The most weights one population holds, members x parameters (`check_population_size`).
MAX_POPULATION_WEIGHTS = 20_000_000


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
        losses: every written member's full loss curve, by child run id.
        boundaries: the final decision boundary of the written members a gallery shows.
        members: the written members' final weights and outputs, a group per batch written
            (`sweeps.sweep_folder.MEMBERS_FILE`).
        written: child runs written.
        trained: jobs trained (or failed on a bad value), written or not.
    """

    losses: dict[str, np.ndarray] = field(default_factory=dict)
    boundaries: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    members: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    written: int = 0
    trained: int = 0


def apply_sweep_defaults(cfg: DictConfig, set_on_command_line: set[str]) -> None:
    """Set `SWEEP_DEFAULTS` in `cfg` for the fields it has that the command line did not set."""
    with open_dict(cfg):
        for key, value in SWEEP_DEFAULTS.items():
            present = OmegaConf.select(cfg, key, default=_ABSENT) is not _ABSENT
            if present and key not in set_on_command_line:
                OmegaConf.update(cfg, key, value, merge=False)


_ABSENT = object()


def fallback_reason(cfg: DictConfig) -> str | None:
    """Why this config's jobs must run one by one, or None if they can run as a population."""
    validate(cfg)
    for key in ("tracking.log_model", "tracking.log_figures"):
        if OmegaConf.select(cfg, key, default=False):
            return f"{key}=true (a Keras model or figure per child)"
    built = build(cfg)
    return population.unsupported_reason(built.model, built.optimizer)


def check_population_size(cfg: DictConfig, members: int) -> None:
    """Refuse, before anything trains, a population too large for memory.

    A population holds each of its weights several times over (the weights, their velocities
    and gradients), for every member: `MAX_POPULATION_WEIGHTS` float32 are 80 MB a copy.
    """
    model, dataset = OmegaConf.to_object(cfg.model), OmegaConf.to_object(cfg.dataset)
    weights = model.parameter_count(dataset.n_inputs)
    if members * weights > MAX_POPULATION_WEIGHTS:
        raise ConfigError(
            f"hydra/sweeper=vectorized: {members:,} jobs of a model of {weights:,} parameters "
            f"are {members * weights:,} weights in one population, at most "
            f"{MAX_POPULATION_WEIGHTS:,}; sweep at most {MAX_POPULATION_WEIGHTS // weights:,} "
            "jobs of this model (fewer seeds or values), or a smaller model (model.hidden_units)"
        )


class ValueChecker:
    """Each job's config checked by the schema, one distinct value of each key at a time.

    The checks of the value-only keys are each about their own field (a seed's range, a
    positive rate, a momentum below 1), so a job whose every value passed on its own passes.
    Checking a value once, not each of 10,000 configs, costs milliseconds instead of a minute.
    """

    def __init__(self, cfg: DictConfig):
        self.cfg = copy.deepcopy(cfg)
        self.checked: dict[tuple[str, str], Any] = {}

    def checked_value(self, key: str, value: Any) -> Any:
        """`value` as the config holds it (1 becomes 1.0 in a float field); ConfigError if bad."""
        cache_key = (key, repr(value))
        if cache_key not in self.checked:
            self.checked[cache_key] = self._check(key, value)
        result = self.checked[cache_key]
        if isinstance(result, Exception):
            raise result
        return result

    def _check(self, key: str, value: Any) -> Any:
        original = OmegaConf.select(self.cfg, key)
        try:
            OmegaConf.update(self.cfg, key, value, merge=False)
            validate(self.cfg)
            return OmegaConf.select(self.cfg, key)
        except ConfigError as error:
            return error
        except Exception as error:  # OmegaConf's type errors: the one-line form of the CLI
            return ConfigError(one_line(error))
        finally:
            OmegaConf.update(self.cfg, key, original, merge=False)


def run_population(
    cfg: DictConfig,
    jobs: list[MemberJob],
    progress: Progress,
    recorded: Recorded,
    runs_per_transaction: int = children.BATCH,
    before_writing: Callable[[], None] = lambda: None,
) -> list[JobOutcome]:
    """Train `jobs` (configs `cfg` with their values) as one population; log each as a child
    (after `before_writing` returns: the sweeper's job folders, written meanwhile).

    Returns each job's outcome, in the order of `jobs`. Adds to `recorded`, as each child is
    written, its full loss curve and (for the members a gallery shows) its decision boundary.
    """
    checker = ValueChecker(cfg)
    outcomes: dict[int, JobOutcome] = {}
    valid: list[tuple[MemberJob, dict[str, Any]]] = []
    configured = {key: OmegaConf.select(cfg, key) for key in VALUE_KEYS}
    for member in jobs:
        try:
            values = {
                key: checker.checked_value(key, value) for key, value in member.values.items()
            }
        except ConfigError as error:
            outcomes[member.job.number] = JobOutcome(member.job, error=error)
            continue
        valid.append((member, {key: values.get(key, configured[key]) for key in VALUE_KEYS}))

    built = build(cfg)
    trained_from = int(time.time() * 1000)
    history = _train(built, [values for _, values in valid], progress) if valid else None
    trained_until = int(time.time() * 1000)
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
    times = member_times(history, trained_from, trained_until) if valid else []
    epochs, max_loss_points = cfg.trainer.epochs, cfg.tracking.max_loss_points
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
                weights=[weight[index] for weight in history.weights],
                epochs=epochs,
                max_loss_points=max_loss_points,
                dataset=records.dataset_name(member.job, gate),
                start_time=times[index][0],
                end_time=times[index][1],
            )
        )
        loss = float(member_history.loss[-1]) if len(member_history.loss) else float("nan")
        outcomes[member.job.number] = JobOutcome(member.job, loss=loss)

    recorded.trained += len(jobs)
    index_of = {member.job.number: index for index, (member, _) in enumerate(valid)}
    shown = {member.job.number for _, member in gallery_members(valid)}
    total = len(run_records)
    written = 0

    def on_written(run_ids: dict[int, str]) -> None:
        nonlocal written
        written += len(run_ids)
        recorded.written += len(run_ids)
        trained = [(number, run_id) for number, run_id in run_ids.items() if number in index_of]
        if trained:
            recorded.members[str(len(recorded.members))] = member_arrays(
                layers, history, [(run_id, index_of[number]) for number, run_id in trained]
            )
        for number, run_id in trained:  # the others failed on a bad value: nothing trained
            index = index_of[number]
            recorded.losses[run_id] = history.member(index).loss
            if number in shown:
                weights = [weight[index] for weight in history.weights]
                recorded.boundaries[run_id] = boundary_arrays(built, weights)
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


def _train(
    built: Built, member_values: list[dict[str, Any]], progress: Progress
) -> population.PopulationHistory:
    members = [
        population.Member(
            seed=values["seed"],
            learning_rate=values["optimizer.learning_rate"],
            momentum=values["optimizer.momentum"] or 0.0,
        )
        for values in member_values
    ]
    epochs = built.schedule.epochs
    started = time.perf_counter()
    chunk_times: list[float] = []

    def on_chunk(done: int) -> None:
        chunk_times.append(time.perf_counter())
        if len(chunk_times) == 1:
            log.info(
                "training %d members: compiled, epoch %d/%d after %.2f s",
                len(members),
                done,
                epochs,
                chunk_times[0] - started,
            )
        progress.show(f"training {len(members)} members: epoch {done}/{epochs}")

    history = population.train_population(
        built.model,
        built.optimizer,
        members,
        built.dataset.inputs,
        built.dataset.targets,
        built.schedule,
        on_chunk=on_chunk,
    )
    # The first chunk includes tracing and XLA compiling; the others are training alone.
    log.info(
        "trained %d members for %d epochs in %.2f s (compile and first chunk %.2f s)",
        len(members),
        epochs,
        chunk_times[-1] - started,
        chunk_times[0] - started,
    )
    return history
