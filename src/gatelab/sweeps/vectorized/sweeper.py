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

import logging
import math
from pathlib import Path
from typing import Any

import mlflow
from hydra.core.utils import JobReturn, JobStatus
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from gatelab.config import validate
from gatelab.errors import ConfigError
from gatelab.sweeps import sweep_folder
from gatelab.sweeps.members import VALUE_KEYS, apply_sweep_defaults, check_population_size
from gatelab.sweeps.progress import Progress
from gatelab.sweeps.shards import split
from gatelab.sweeps.sweeper import SweeperImpl, launch_batches, one_by_one_reason, task_config
from gatelab.sweeps.vectorized.child_writing import Recorded
from gatelab.sweeps.vectorized.plan import (
    MAX_JOBS,
    JobValues,
    Plan,
    estimate,
    plan_of,
)
from gatelab.sweeps.vectorized.population import JobOutcome, MemberJob, train_and_write
from gatelab.sweeps.vectorized.settings import check_settings
from gatelab.sweeps.vectorized.shards import Shard, VectorizedShards, plan_shard
from gatelab.tracking import bulk, records
from gatelab.tracking.children import child_store
from gatelab.tracking.store import analyze

log = logging.getLogger(__name__)

DEFAULT_SUBDIR = "${hydra.job.num}"


class VectorizedSweeperImpl(SweeperImpl):
    """What `hydra/sweeper=vectorized` does: Hydra's job list, trained a population at a time."""

    def __init__(
        self,
        params: dict[str, str] | None = None,
        max_jobs: int = MAX_JOBS,
        runs_per_transaction: int = bulk.BATCH,
        max_batch_size: int | None = None,
        n_shards: int = 1,
    ):
        super().__init__(params)
        self.max_jobs = max_jobs
        self.runs_per_transaction = runs_per_transaction
        self.max_batch_size = max_batch_size
        self.n_shards = n_shards

    def sweep(self, arguments: list[str]) -> list[list[JobReturn]]:
        # The `mlflow_sweep` callback checked them before it opened the parent run, if any.
        check_settings(
            max_jobs=self.max_jobs,
            runs_per_transaction=self.runs_per_transaction,
            max_batch_size=self.max_batch_size,
            n_shards=self.n_shards,
        )
        plan = plan_of(self.parsed(arguments), VALUE_KEYS, self.max_jobs)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        self.save_multirun_yaml()

        # Compose every structural combination first: a config that cannot be composed stops
        # the sweep before any job runs, as the basic sweeper's check of its batch does.
        composed = {structural: self.compose(list(structural)) for structural in plan.groups}
        with self.timings.timed("compose"):
            # Each job's values from its own overrides, as its composed config would hold them.
            values = {}
            for structural, numbers in plan.groups.items():
                of_group = JobValues(plan, composed[structural])
                values.update((number, of_group.of(number)) for number in numbers)
        # Every population's size, before the first one trains.
        for structural, numbers in plan.groups.items():
            try:
                validate(task_config(composed[structural]))
            except ConfigError:
                continue  # its jobs fail one by one, each with that error
            # What one process trains at once: a population, or a shard of one.
            check_population_size(composed[structural], math.ceil(len(numbers) / self.n_shards))

        sweep = sweep_folder.sweep_of(sweep_dir)
        # Jobs an earlier run of this sweep finished (`sweeps.resume`) are not run again.
        finished = {
            number: loss
            for number, loss in (sweep.finished if sweep is not None else {}).items()
            if number < len(plan.jobs)
        }
        uri = self.config.tracking.uri or mlflow.get_tracking_uri()
        launcher = self.config.hydra.runtime.choices.get("hydra/launcher", "basic")
        log.info(
            "%s",
            estimate(plan, composed, len(finished), child_store(uri), self.n_shards, launcher),
        )
        recorded = Recorded(arrays=sweep_folder.SweepArrays.load(sweep_dir))
        returns = [
            (number, skipped_return(plan.jobs[number], loss, sweep_dir / str(number), self.config))
            for number, loss in finished.items()
        ]
        try:
            returns += self._run_populations(plan, composed, values, sweep, finished, recorded)
        except KeyboardInterrupt:
            # How many jobs are recorded is said once, by the summary, as the store holds them.
            recorded_text = (
                f"{len(finished) + recorded.written} of {len(plan.jobs)} jobs recorded; "
                if sweep is None  # no parent run: no summary
                else ""
            )
            log.warning(
                "stopped: %s%d job(s) trained and not written, %d not trained",
                recorded_text,
                recorded.trained - recorded.written,
                len(plan.jobs) - len(finished) - recorded.trained,
            )
            raise
        finally:
            # What was written, stopped or not: the summary's pictures need no download.
            with self.timings.timed("parent losses"):
                if sweep is None:  # a job without a sweep run: its folder alone
                    recorded.arrays.save(sweep_dir)
                else:
                    recorded.arrays.save(sweep_dir, MlflowClient(), sweep.run_id)
        with self.timings.timed("ANALYZE"):
            analyze(uri)
        log.info("vectorized sweep timings: %s", self.timings)
        results = [result for _, result in sorted(returns, key=lambda pair: pair[0])]
        for result in results:
            # As the basic sweeper: a failed job's error is raised once every job has ended.
            _ = result.return_value
        return [results]

    def _run_populations(
        self,
        plan: Plan,
        composed: dict[tuple[str, ...], DictConfig],
        values: dict[int, dict[str, Any]],
        sweep: sweep_folder.Sweep | None,
        finished: dict[int, float],
        recorded: Recorded,
    ) -> list[tuple[int, JobReturn]]:
        """Train each population but the `finished` jobs (here, or in shards through the
        launcher), then run the jobs no population can train through the launcher; return
        Hydra's record of each job, by number."""
        progress = Progress()
        sweep_dir = Path(self.config.hydra.sweep.dir)
        task_name = self.config.hydra.job.name
        returns: list[tuple[int, JobReturn]] = []
        one_by_one: list[int] = []
        shards: list[Shard] = []
        # One population of every job: its summary's figures are drawn while its children are
        # written (`drawn_ahead`).
        whole = len(plan.groups) == 1 and not finished and self.n_shards == 1
        for structural, all_numbers in plan.groups.items():
            numbers = [number for number in all_numbers if number not in finished]
            if not numbers:
                continue
            cfg = composed[structural]
            apply_sweep_defaults(cfg, plan.set_on_command_line)
            task_cfg = task_config(cfg)
            reason = self._fallback_reason(cfg, task_cfg)
            if reason is not None:
                log.info("%d job(s) run one by one: %s", len(numbers), reason)
                one_by_one += numbers
                continue
            choices = dict(cfg.hydra.runtime.choices)
            jobs = [
                MemberJob(
                    job=job_of(sweep, list(plan.jobs[number]), choices, sweep_dir, number),
                    values=values[number],
                )
                for number in numbers
            ]
            if self.n_shards > 1:
                shards += [
                    Shard(len(shards) + index, structural, piece)
                    for index, piece in enumerate(split(jobs, self.n_shards))
                ]
                continue
            outcomes = train_and_write(
                task_cfg,
                jobs,
                progress,
                recorded,
                self.runs_per_transaction,
                self.timings,
                whole_sweep=sweep if whole else None,
            )
            returns += job_returns(outcomes, task_name)
        progress.done()
        if shards:
            for shard in shards:
                plan_shard(shard, sweep_dir, plan.set_on_command_line, self.runs_per_transaction)
            launcher = VectorizedShards(self.hydra_context, self.config, self.max_batch_size)
            with self.timings.timed("shards"):
                outcomes = launcher.run(shards, recorded)
            returns += job_returns(outcomes, task_name)
        return returns + self._launch(plan, one_by_one, recorded)

    def _launch(
        self, plan: Plan, numbers: list[int], recorded: Recorded
    ) -> list[tuple[int, JobReturn]]:
        """Run jobs `numbers` through the launcher, as the basic sweeper would: in batches of at
        most `max_batch_size` (all at once if None) of consecutive jobs."""
        returns: list[tuple[int, JobReturn]] = []
        for batch in launch_batches(numbers, self.max_batch_size):
            recorded.trained += len(batch)
            results = self.launcher.launch(
                [plan.jobs[number] for number in batch], initial_job_idx=batch[0]
            )
            recorded.written += len(batch)
            returns += zip(batch, results, strict=True)
        return returns

    def _fallback_reason(self, cfg: DictConfig, task_cfg: DictConfig) -> str | None:
        # Job folders are written here as `hydra.sweep.dir/<job number>`, Hydra's default.
        subdir = OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["subdir"]
        if subdir != DEFAULT_SUBDIR:
            return f"hydra.sweep.subdir={subdir}"
        return one_by_one_reason(task_cfg)


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


def skipped_return(
    overrides: list[str], loss: float, output_dir: Path, config: DictConfig
) -> JobReturn:
    """Hydra's record of a job an earlier run of the sweep finished: its final loss."""
    return JobReturn(
        overrides=overrides,
        working_dir=str(output_dir),
        task_name=config.hydra.job.name,
        status=JobStatus.COMPLETED,
        _return_value=loss,
    )


def job_returns(outcomes: list[JobOutcome], task_name: str) -> list[tuple[int, JobReturn]]:
    """Hydra's record of each job that ran in a population (`hydra.job.name` `task_name`), by
    number."""
    return [(outcome.job.number, job_return(outcome, task_name)) for outcome in outcomes]


def job_return(outcome: JobOutcome, task_name: str) -> JobReturn:
    """Hydra's record of a job that ran in a population."""
    if outcome.error is not None:
        status, value = JobStatus.FAILED, outcome.error
    else:
        status, value = JobStatus.COMPLETED, outcome.loss
    return JobReturn(
        overrides=outcome.job.overrides,
        working_dir=str(outcome.job.output_dir),
        task_name=task_name,
        status=status,
        _return_value=value,
    )
