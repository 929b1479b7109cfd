"""The vectorized sweeper: the basic sweeper's grammar, one population per structural combination.

`python src/train.py -m hydra/sweeper=vectorized seed='range(1000)' optimizer.learning_rate=0.1,1`
lists its jobs as the basic sweeper does (same order, same numbers). Jobs that differ only in
`seed`, `optimizer.learning_rate` or `optimizer.momentum` share one config composed by Hydra's
config loader and train together (`sweeps.population`); each still gets its folder
(`.hydra/config.yaml`, `.hydra/overrides.yaml`) and its MLflow child run. Jobs the population
engine cannot train (another optimizer, a model with other layers, a Keras model logged per
child) run one by one through the configured launcher, exactly as without this sweeper. The
`mlflow_sweep` callback opens and summarises the parent run as in any sweep; the members' loss
curves reach it through the sweep folder (`losses.npz`).
"""

import copy
import logging
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from gatelab.config import validate
from gatelab.errors import ConfigError
from gatelab.sweeps import parent as sweep_folder
from gatelab.sweeps.job_folders import JobFolders
from gatelab.sweeps.population import (
    VALUE_KEYS,
    JobOutcome,
    MemberJob,
    apply_sweep_defaults,
    check_population_size,
    fallback_reason,
    run_population,
)
from gatelab.sweeps.progress import Progress
from gatelab.tracking import records
from gatelab.tracking.store import analyze

log = logging.getLogger(__name__)

DEFAULT_SUBDIR = "${hydra.job.num}"


class Timings(dict):
    """Seconds spent in each step of a sweep, added up over its populations."""

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self[step] = self.get(step, 0.0) + time.perf_counter() - started

    def __str__(self) -> str:
        return ", ".join(f"{step} {seconds:.2f} s" for step, seconds in self.items())


class VectorizedSweeperImpl:
    """What `hydra/sweeper=vectorized` does; the plugin in `hydra_plugins` only delegates here."""

    def __init__(self, params: dict[str, str] | None = None):
        self.params = params or {}
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None
        self.timings = Timings()

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> list[list[JobReturn]]:
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(
            [*(f"{key}={value}" for key, value in self.params.items()), *arguments]
        )
        value_keys, typed_values = value_only(overrides, VALUE_KEYS)
        # The basic sweeper's job list, so a job has the same number with either sweeper.
        all_jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        set_on_command_line = {override.key_or_group for override in overrides}

        groups: OrderedDict[tuple[str, ...], list[int]] = OrderedDict()
        for number, job in enumerate(all_jobs):
            structural = tuple(item for item in job if item.split("=", 1)[0] not in value_keys)
            groups.setdefault(structural, []).append(number)

        # Compose every structural combination first: a config that cannot be composed stops
        # the sweep before any job runs, as the basic sweeper's check of its batch does.
        with self.timings.timed("compose"):
            composed = {
                structural: self.hydra_context.config_loader.load_sweep_config(
                    self.config, list(structural)
                )
                for structural in groups
            }
        log.info(
            "vectorized sweep: %d jobs in %d population(s), composed in %.2f s",
            len(all_jobs),
            len(groups),
            self.timings["compose"],
        )

        # Every population's size, before the first one trains.
        for structural, numbers in groups.items():
            try:
                validate(task_config(composed[structural]))
            except ConfigError:
                continue  # its jobs fail one by one, each with that error
            check_population_size(composed[structural], len(numbers))

        progress = Progress()
        sweep = sweep_folder.sweep_of(sweep_dir)
        losses: dict = {}
        boundaries: dict = {}
        returns: list[tuple[int, JobReturn]] = []
        for structural, numbers in groups.items():
            cfg = composed[structural]
            apply_sweep_defaults(cfg, set_on_command_line)
            task_cfg = task_config(cfg)
            reason = self._fallback_reason(cfg, task_cfg)
            if reason is not None:
                log.info("%d job(s) run one by one: %s", len(numbers), reason)
                for number in numbers:
                    (result,) = self.launcher.launch([all_jobs[number]], initial_job_idx=number)
                    returns.append((number, result))
                continue
            choices = dict(cfg.hydra.runtime.choices)
            jobs = [
                MemberJob(
                    job=job_of(sweep, list(all_jobs[number]), choices, sweep_dir, number),
                    values={
                        key: typed_values[item]
                        for item in all_jobs[number]
                        if (key := item.split("=", 1)[0]) in value_keys
                    },
                )
                for number in numbers
            ]
            with self.timings.timed("train and log"):
                outcomes, population_losses, population_boundaries = run_population(
                    task_cfg, jobs, progress
                )
            losses.update(population_losses)
            boundaries.update(population_boundaries)
            with self.timings.timed("write folders"):
                JobFolders(cfg, VALUE_KEYS).write(
                    [(job.job.output_dir, job.job.overrides, job.values) for job in jobs]
                )
            returns += [(outcome.job.number, job_return(outcome, cfg)) for outcome in outcomes]
        progress.done()

        with self.timings.timed("parent losses and ANALYZE"):
            if any(boundaries.values()):
                sweep_folder.write_boundaries(sweep_dir, boundaries)
            if losses:
                path = sweep_folder.write_losses(sweep_dir, losses)
                if sweep is not None:
                    MlflowClient().log_artifact(sweep.run_id, str(path))
            analyze(self.config.tracking.uri or mlflow.get_tracking_uri())
        log.info("vectorized sweep timings: %s", self.timings)
        results = [result for _, result in sorted(returns, key=lambda pair: pair[0])]
        for result in results:
            # As the basic sweeper: a failed job's error is raised once every job has ended.
            _ = result.return_value
        return [results]

    def _fallback_reason(self, cfg: DictConfig, task_cfg: DictConfig) -> str | None:
        # Job folders are written here as `hydra.sweep.dir/<job number>`, Hydra's default.
        subdir = OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["subdir"]
        if subdir != DEFAULT_SUBDIR:
            return f"hydra.sweep.subdir={subdir}"
        try:
            return fallback_reason(task_cfg)
        except ConfigError as error:
            # The config itself is bad: each job fails with that error, as with the basic sweeper.
            return f"the config fails before training ({type(error).__name__})"


def job_of(
    sweep: sweep_folder.Sweep | None,
    overrides: list[str],
    choices: dict[str, str],
    sweep_dir: Path,
    number: int,
) -> records.Job:
    """A job of the sweep in its folder `<sweep_dir>/<number>` (a job without a sweep run alone)."""
    if sweep is None:
        return records.Job(overrides, choices, sweep_dir / str(number), number=number)
    return sweep.job(overrides, choices, sweep_dir / str(number), number)


def task_config(cfg: DictConfig) -> DictConfig:
    """The config a job's task function sees: without Hydra's own node, as `run_job` passes it."""
    task_cfg = copy.deepcopy(cfg)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    return task_cfg


def value_only(overrides: list[Override], keys: tuple[str, ...]) -> tuple[set[str], dict[str, Any]]:
    """The plain `key=value` overrides of `keys`, and each job item (`seed=3`) as a typed value."""
    value_keys = set()
    typed: dict[str, Any] = {}
    for override in overrides:
        if (
            override.type != OverrideType.CHANGE
            or override.package
            or override.key_or_group not in keys
        ):
            continue
        key = override.get_key_element()
        value_keys.add(key)
        if override.is_sweep_override():
            values = zip(override.sweep_string_iterator(), override.sweep_iterator(), strict=True)
        else:
            values = [(override.get_value_element_as_str(), override.value())]
        for text, value in values:
            typed[f"{key}={text}"] = value
    return value_keys, typed


def job_return(outcome: JobOutcome, cfg: DictConfig) -> JobReturn:
    """Hydra's record of a job that ran in a population."""
    if outcome.error is not None:
        status, value = JobStatus.FAILED, outcome.error
    else:
        status, value = JobStatus.COMPLETED, outcome.loss
    return JobReturn(
        overrides=outcome.job.overrides,
        working_dir=str(outcome.job.output_dir),
        task_name=cfg.hydra.job.name,
        status=status,
        _return_value=value,
    )
