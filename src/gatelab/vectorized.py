"""A vectorized sweep's jobs from one composed config: train them as one population, log in bulk.

The Hydra side (grammar, composing, job folders, falling back) is the sweeper plugin in
`src/hydra_plugins/gatelab_vectorized_sweeper`; this module is the pipeline of a population:
check each job's values with the schema, train every valid job at once
(`gatelab.population`), and record each as its own MLflow child run through MLflow's public
client API, with the same name, tags, params and metrics as a job of a per-job sweep.
"""

import copy
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from mlflow.entities import Metric, RunStatus
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf, open_dict

from gatelab import bulk, pipeline, population, store, sweep, tracking
from gatelab.config import ConfigError, validate

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
LOSSES_FILE = "losses.npz"


@dataclass(frozen=True)
class Job:
    """One job of a population: its number, its overrides as typed and its value-only values."""

    number: int
    overrides: list[str]
    values: dict[str, Any]
    output_dir: Path


@dataclass(frozen=True)
class Outcome:
    """A job's end: the final loss it returns to Hydra, or the error it failed with."""

    job: Job
    loss: float | None = None
    error: BaseException | None = None


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
    from gatelab.backend import keras

    validate(cfg)
    for key in ("tracking.log_model", "tracking.log_figures"):
        if OmegaConf.select(cfg, key, default=False):
            return f"{key}=true (a Keras model or figure per child)"
    keras.utils.set_random_seed(cfg.seed)
    dataset = instantiate(cfg.dataset)
    model = instantiate(cfg.model, n_inputs=dataset.n_inputs)
    optimizer = instantiate(cfg.optimizer)
    return population.unsupported_reason(model, optimizer)


class ValueChecker:
    """Each job's config checked by the schema, one distinct value of each key at a time.

    The checks of the value-only keys are each about their own field (a seed's range, a
    positive rate, a momentum below 1), so a job whose every value passed on its own passes.
    Checking a value once, not each of 10,000 configs, costs milliseconds instead of a minute.
    """

    def __init__(self, cfg: DictConfig):
        self.cfg = copy.deepcopy(cfg)
        self.checked: dict[tuple[str, str], Any] = {}

    def typed(self, key: str, value: Any) -> Any:
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
            from gatelab.cli import one_line

            return ConfigError(one_line(error))
        finally:
            OmegaConf.update(self.cfg, key, original, merge=False)


def run_population(
    cfg: DictConfig,
    jobs: list[Job],
    *,
    choices: dict[str, str],
    parent_run_id: str | None,
    progress: "Progress",
    on_losses: Callable[[dict[str, np.ndarray]], None] | None = None,
) -> list[Outcome]:
    """Train `jobs` (configs `cfg` with their values) as one population; log each as a child."""
    from gatelab.backend import keras

    checker = ValueChecker(cfg)
    outcomes: dict[int, Outcome] = {}
    valid: list[tuple[Job, dict[str, Any]]] = []
    for job in jobs:
        try:
            values = {key: checker.typed(key, value) for key, value in job.values.items()}
        except ConfigError as error:
            outcomes[job.number] = Outcome(job, error=error)
            continue
        valid.append(
            (job, {key: values.get(key, OmegaConf.select(cfg, key)) for key in VALUE_KEYS})
        )

    keras.utils.set_random_seed(cfg.seed)
    dataset = instantiate(cfg.dataset)
    model = instantiate(cfg.model, n_inputs=dataset.n_inputs)
    optimizer = instantiate(cfg.optimizer)
    members = [
        population.Member(
            seed=values["seed"],
            learning_rate=values["optimizer.learning_rate"],
            momentum=values["optimizer.momentum"] or 0.0,
        )
        for _, values in valid
    ]
    epochs = cfg.trainer.epochs
    history = None
    if members:
        started = time.perf_counter()
        chunk_times: list[float] = []

        def on_chunk(done: int) -> None:
            chunk_times.append(time.perf_counter())
            progress.show(f"training {len(members)} members: epoch {done}/{epochs}")

        history = population.train_population(
            model,
            optimizer,
            members,
            dataset.inputs,
            dataset.targets,
            loss=cfg.trainer.loss,
            epochs=epochs,
            batch_size=cfg.trainer.batch_size,
            shuffle=cfg.trainer.shuffle,
            jit_compile=cfg.trainer.jit_compile,
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

    started = time.perf_counter()
    children = Children(cfg, choices, parent_run_id)
    records = [
        children.failed(job, outcomes[job.number].error) for job in jobs if job.number in outcomes
    ]
    for index, (job, values) in enumerate(valid):
        member_history = history.member(index)
        outputs = history.outputs[index]
        weights = [weight[index] for weight in history.weights]
        records.append(
            children.member(job, values, member_history, outputs, weights, model, dataset)
        )
        loss = float(member_history.loss[-1]) if len(member_history.loss) else float("nan")
        outcomes[job.number] = Outcome(job, loss=loss)
    logged = 0

    def on_written(count: int) -> None:
        nonlocal logged
        logged += count
        rate = logged / max(time.perf_counter() - started, 1e-9)
        progress.show(
            f"child runs logged: {logged}/{len(records)} "
            f"({rate:.0f}/s, ETA {(len(records) - logged) / rate:.0f} s)"
        )

    run_ids = bulk.write_all(children.experiment_id, records, on_written=on_written)
    seconds = time.perf_counter() - started
    log.info(
        "logged %d child runs in %.2f s (%.1f ms each)",
        len(records),
        seconds,
        1000 * seconds / max(len(records), 1),
    )
    if history is not None and on_losses is not None:
        on_losses(
            {
                run_ids[job.number]: history.member(index).loss
                for index, (job, _) in enumerate(valid)
            }
        )
    return [outcomes[job.number] for job in jobs]


class Children:
    """Each job's child run as `bulk.RunRecord`: the name, tags, params and metrics a job of a
    per-job sweep logs, in one `log_batch`."""

    def __init__(self, cfg: DictConfig, choices: dict[str, str], parent_run_id: str | None):
        self.experiment_id = tracking.configure(cfg.tracking.uri, cfg.tracking.experiment)
        self.parent_run_id = parent_run_id
        self.choices = choices
        self.swept = sweep.swept_keys_of(parent_run_id) if parent_run_id is not None else []
        self.user_tags = tracking.user_tags(list(cfg.tags))
        self.params = {key: str(value) for key, value in tracking.config_params(cfg).items()}
        self.max_loss_points = cfg.tracking.max_loss_points
        self.epochs = cfg.trainer.epochs

    def _record(self, job: Job, params: dict[str, str], **results: Any) -> bulk.RunRecord:
        # Where it runs, for `python -m gatelab.runs mark-dead-killed`.
        tags = {**child_tags(job, self.choices), **self.user_tags, **store.process_tags()}
        if self.parent_run_id is not None:
            tags["mlflow.parentRunId"] = self.parent_run_id
        return bulk.RunRecord(
            key=job.number, name=child_name(job, self.swept), tags=tags, params=params, **results
        )

    def member(self, job, values, history, outputs, weights, model, dataset) -> bulk.RunRecord:
        """A trained member: its values, coarse `loss`, final metrics, weights and predictions."""
        params = {
            **self.params,
            **{key: str(value) for key, value in values.items() if key in self.params},
        }
        timestamp = int(time.time() * 1000)
        metrics = [
            Metric("loss", float(history.loss[epoch - 1]), timestamp, int(epoch))
            for epoch in tracking.loss_steps(self.epochs, len(history.loss), self.max_loss_points)
        ]
        final = pipeline.outcome_metrics(outputs, dataset.targets, history)
        metrics += [Metric(key, value, timestamp, 0) for key, value in final.items()]
        # Weights and predictions as tags of the same write: two artifacts per child cost
        # as much again as the rest of the run (benchmarks/bench_child_logging.py).
        result_tags = {
            "weights": json.dumps(weights_json(model, weights)),
            "predictions": json.dumps(predictions_json(dataset, outputs)),
        }
        if history.diverged:
            result_tags["failure_reason"] = "diverged"
        status = RunStatus.FAILED if history.diverged else RunStatus.FINISHED
        return self._record(
            job,
            params,
            metrics=metrics,
            result_tags=result_tags,
            status=RunStatus.to_string(status),
        )

    def failed(self, job: Job, error: BaseException) -> bulk.RunRecord:
        """A job refused before training (a bad value): its params and the error, FAILED."""
        params = {**self.params, **{key: str(value) for key, value in job.values.items()}}
        return self._record(
            job,
            params,
            result_tags=tracking.error_tags(error),
            status=RunStatus.to_string(RunStatus.FAILED),
        )


def child_name(job: Job, swept: list[str]) -> str:
    """The run name of a job: its swept values, as a job of a per-job sweep is named."""
    if swept:
        return tracking.child_run_name(sweep.swept_values(job.overrides, swept))
    return tracking.run_name(job.overrides)


def child_tags(job: Job, choices: dict[str, str]) -> dict[str, str]:
    """A job's tags as `pipeline.Job.tags` gives them in a per-job sweep."""
    tags = {
        "hydra.overrides": tracking.run_name(job.overrides),
        "hydra.job.num": str(job.number),
        "hydra.output_dir": str(job.output_dir),
    }
    for group, option in choices.items():
        if not group.startswith("hydra/"):
            tags[f"hydra.choices.{group}"] = str(option)
    return tags


def weights_json(model, weights: list[np.ndarray]) -> dict[str, dict[str, list]]:
    """A member's weights by layer, as `tracking.weights_by_layer` writes a single run's."""
    result: dict[str, dict[str, list]] = {}
    values = iter(weights)
    for layer in model.layers:
        result[layer.name] = {weight.name: next(values).tolist() for weight in layer.weights}
    return result


def predictions_json(dataset, outputs: np.ndarray) -> dict[str, list]:
    """The member's predictions in the layout of a single run's `predictions.json` table."""
    rows = zip(
        dataset.inputs.tolist(), dataset.targets[:, 0].tolist(), outputs[:, 0].tolist(), strict=True
    )
    return {"columns": ["inputs", "target", "output"], "data": [list(row) for row in rows]}


def log_losses(parent_run_id: str, losses: dict[str, np.ndarray], directory: Path) -> None:
    """Every member's full loss curve once, on the parent: `losses.npz`, arrays by child run id."""
    path = directory / LOSSES_FILE
    np.savez_compressed(path, **losses)
    MlflowClient().log_artifact(parent_run_id, str(path))


def analyze_store(uri: str) -> bool:
    """Run SQLite's ANALYZE on a SQLite store so its metric reads use the right index.

    MLflow never runs it: without statistics SQLite reads a run's metric history through an
    index that scans every `loss` row of the store. ANALYZE writes only SQLite's own
    `sqlite_stat1` table, nothing of MLflow's. Returns whether the store was a SQLite one.
    """
    if not uri.startswith("sqlite:"):
        return False
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return True


class Progress:
    """One line on a terminal, rewritten in place (at most 10 times a second); silent in logs."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.last = 0.0

    def show(self, text: str, force: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.1 and not force):
            return
        self.last = now
        self.stream.write(f"\r\033[K{text}")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()
