"""Sweeps in MLflow: one parent run per Hydra multirun, each job a child, and a summary at the end.

`SweepCallback` is a Hydra callback (conf/hydra/callbacks/mlflow_sweep.yaml). Its multirun
hooks run in the launching process and its job hooks wherever the job runs, so it works the same
for the basic launcher and for joblib, Ray or SLURM: the parent run id reaches the jobs through
the sweep folder (`parent`), and the summary is read back from MLflow, which every job wrote to
(`results`), then published on the parent (`publish`).
"""

import gc
import logging
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from mlflow.entities import Param, RunStatus
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from gatelab.config import validate
from gatelab.config.checks import refuse_swept_tracking
from gatelab.config.schemas import MAX_EXPERIMENT_NAME_LENGTH
from gatelab.errors import SweepNotStarted, one_line
from gatelab.redaction import redact, redact_files, redact_output
from gatelab.sweeps import parent as sweep_folder
from gatelab.sweeps import resume
from gatelab.sweeps.cells import create_cells, planned_cells
from gatelab.sweeps.publish import ParentRun, publish
from gatelab.sweeps.results import kill_if_running, read_results
from gatelab.sweeps.summary import cell_keys, sweep_status
from gatelab.tracking import records, store, writer
from gatelab.tracking.experiment import configure
from gatelab.tracking.naming import (
    config_params,
    fixed_overrides,
    overrides_text,
    planned_jobs,
    sweep_run_name,
    swept_keys,
    user_tags,
    valid_tags,
)

log = logging.getLogger(__name__)


class SweepCallback(Callback):
    """Open a parent MLflow run when a multirun starts; summarise and close it when it ends."""

    def __init__(self) -> None:
        self.client: MlflowClient | None = None
        self.run_id: str | None = None
        self.swept: list[str] = []
        self.sweep_dir: Path | None = None
        self.command = ""
        # The run id of each cell of the grid, by cell name (`sweeps.cells`).
        self.cells: dict[str, str] = {}
        # The jobs the command makes, if the overrides tell (None for an Optuna-like sweep).
        self.planned: int | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            self.start(config)
        except Exception as error:
            for run_id in [*self.cells.values(), self.run_id]:
                if run_id is not None:
                    self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
            # Hydra turns an Exception of this hook into a warning and sweeps on, its jobs
            # landing without a parent: stop the command instead (gatelab.cli reports it).
            raise SweepNotStarted(error) from error

    def start(self, config: DictConfig) -> None:
        """Check the store, then open the parent run and leave its id where the jobs find it."""
        if OmegaConf.select(config, "hydra.sweeper.opens_parent_run", default=False):
            return  # the sweeper opens its own (hydra/sweeper=search: the study's run)
        overrides = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
        self.swept = swept_keys(overrides)
        refuse_swept_tracking(self.swept)
        # The sweep's own store and experiment: checked before either is created.
        validate(config.tracking)
        store.check(config.tracking.uri)
        # Creating the store (schema migration) and the experiment here, before any job
        # starts, avoids SQLite's races when parallel workers would otherwise both try.
        self.sweep_dir = Path(config.hydra.sweep.dir).absolute()
        self.planned = planned_jobs(overrides)
        experiment = sweep_experiment(
            config.tracking.experiment,
            self.sweep_dir,
            self.planned,
            config.tracking.own_experiment_above,
        )
        experiment_id = configure(config.tracking.uri, experiment)
        self.client = MlflowClient()
        self.command = redact(shlex.join(["python", *sys.argv]))
        tags = {**user_tags(valid_tags(config)), **store.process_tags()}
        # The sweep's fixed settings: everything its jobs share (a swept key varies by job).
        fixed = {
            key: value
            for key, value in config_params(config, resolve=False).items()
            if key not in self.swept
        }
        if (self.sweep_dir / sweep_folder.PARENT_RUN_FILE).is_file():
            # The folder of an earlier run of this sweep: finish what it did not.
            resumed = resume.reopen(
                self.client, self.sweep_dir, overrides_text(overrides), mlflow.get_tracking_uri()
            )
            self.run_id, self.cells = resumed.run_id, resumed.cells
            experiment_id = resumed.experiment_id
        else:
            self.open_parent(overrides, experiment_id, tags, fixed)
            sweep_folder.record_parent_run_id(self.sweep_dir, self.run_id)
        if not self.cells:
            cells = planned_cells(overrides, cell_keys(self.swept))
            self.cells = create_cells(
                self.client, experiment_id, self.run_id, cells, params=fixed, tags=tags
            )
            sweep_folder.record_cells(self.sweep_dir, self.cells)
        os.environ[sweep_folder.PARENT_RUN_ENV] = self.run_id
        _open_sweeps.append(self)

    def open_parent(
        self,
        overrides: list[str],
        experiment_id: str,
        tags: dict[str, str],
        fixed: dict[str, str],
    ) -> None:
        """Create the sweep's parent run (`self.run_id`), with its `fixed` settings as params."""
        run = self.client.create_run(
            experiment_id,
            run_name=sweep_run_name(self.swept, fixed_overrides(overrides), self.planned),
            tags={
                "sweep.command": self.command,
                "sweep.params": ", ".join(self.swept),
                "sweep.dir": str(self.sweep_dir),
                "hydra.overrides": overrides_text(overrides),
                **tags,
            },
        )
        self.run_id = run.info.run_id
        self.client.log_batch(
            self.run_id, params=[Param(key, value) for key, value in fixed.items()]
        )

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra has just written the job's config files, credentials in `tracking.uri` included.
        redact_output()
        hydra = config.hydra
        files = [Path(hydra.sweep.dir) / "multirun.yaml"]
        if hydra.output_subdir is not None:
            folder = Path(hydra.runtime.output_dir) / hydra.output_subdir
            files += [folder / name for name in ("config.yaml", "hydra.yaml", "overrides.yaml")]
        redact_files(files)
        # Collect what earlier jobs left, then freeze the survivors (TensorFlow, the compiled
        # loop, caches): full collections during the job then skip them. Without this, a
        # sweep spent ~0.1 s a job walking TensorFlow's objects again and again.
        gc.collect()
        gc.freeze()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        # A job that failed before its run started (a bad value in its config) still gets a
        # FAILED child, so the sweep shows every job. Runs in whichever process ran the job.
        if job_return.status != JobStatus.FAILED:
            return
        sweep = sweep_folder.sweep_of(config.hydra.sweep.dir)
        if sweep is None:
            return
        client = MlflowClient()
        number = config.hydra.job.num
        same_job = (
            f"tags.`{records.SWEEP_TAG}` = '{sweep.run_id}' and tags.`hydra.job.num` = '{number}'"
        )
        if client.search_runs([sweep.experiment_id], filter_string=same_job):
            return
        job = sweep.job(
            list(job_return.overrides or []),
            dict(config.hydra.runtime.choices),
            Path(config.hydra.runtime.output_dir),
            number,
        )
        record = records.failed(
            job,
            name=records.run_name(job, default=""),
            # Unresolved: the job may have failed on the very interpolation resolving would raise.
            params=config_params(config, resolve=False),
            user_tags=user_tags(valid_tags(config)),
            # The public `return_value` re-raises and prints Hydra's line about the job again.
            error=job_return._return_value,
        )
        writer.write(client, sweep.experiment_id, record)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        redact_files([Path(config.hydra.sweep.dir) / "multirun.yaml"])
        self.finish()

    def finish(self, interrupted: bool = False, error: BaseException | None = None) -> None:
        """Summarise the jobs, log the summary to the parent run and end it.

        Args:
            error: what ended the sweep early, if anything: the parent's error tags say it.
        """
        if self not in _open_sweeps:
            return
        _open_sweeps.remove(self)
        os.environ.pop(sweep_folder.PARENT_RUN_ENV, None)
        try:
            started = time.perf_counter()
            results = read_results(self.client, self.run_id, self.swept)
            read = time.perf_counter() - started
            if interrupted:
                results = [kill_if_running(self.client, result) for result in results]
            parent = ParentRun(
                self.client,
                self.run_id,
                self.swept,
                self.command,
                self.sweep_dir,
                self.cells,
                self.planned,
            )
            publish(parent, results, interrupted)
            log.info(
                "sweep summary timings: read %d jobs %.2f s, publish %.2f s",
                len(results),
                read,
                time.perf_counter() - started - read,
            )
            # A sweep that failed before any job (its sweeper refused it) says why.
            if error is not None and not results and not isinstance(error, KeyboardInterrupt):
                for key, value in records.error_tags(error).items():
                    self.client.set_tag(self.run_id, key, value)
        except Exception as failure:
            if not interrupted:
                self._end_failed(error or failure)
                raise
            # A stop stays a stop: what the summary could not draw is not a failure.
            log.warning("the stopped sweep's summary is incomplete: %s", one_line(failure))
            self._end_open(RunStatus.to_string(RunStatus.KILLED))
            results = []
        self.client.set_terminated(self.run_id, sweep_status(results, interrupted))

    def _end_failed(self, cause: BaseException) -> None:
        """End the parent and its open cells FAILED, with `cause` in the parent's tags."""
        for key, value in records.error_tags(cause).items():
            self.client.set_tag(self.run_id, key, value)
        self._end_open(RunStatus.to_string(RunStatus.FAILED))

    def _end_open(self, status: str) -> None:
        for run_id in [*self.cells.values(), self.run_id]:
            if self.client.get_run(run_id).info.status == "RUNNING":
                self.client.set_terminated(run_id, status)


def sweep_experiment(
    experiment: str, sweep_dir: Path, jobs: int | None, own_experiment_above: int | None
) -> str:
    """`experiment`, or for a sweep of more jobs than `own_experiment_above` one of its own.

    A page of MLflow's runs table is 100 runs, children included: a sweep of thousands would
    page every other run of its experiment out of sight.
    """
    if own_experiment_above is None or jobs is None or jobs <= own_experiment_above:
        return experiment
    # No `/`: the UI's breadcrumb would show only what follows it.
    name = f"{experiment} sweep {sweep_dir.parent.name} {sweep_dir.name}"
    return name[:MAX_EXPERIMENT_NAME_LENGTH]


_open_sweeps: list[SweepCallback] = []


def finish_open_sweeps(interrupted: bool = False, error: BaseException | None = None) -> None:
    """End sweeps Hydra did not: when a job or the sweeper raised, Hydra skips `on_multirun_end`."""
    for sweep in list(_open_sweeps):
        sweep.finish(interrupted, error)
