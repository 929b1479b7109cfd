"""Sweeps in MLflow: one parent run per Hydra multirun, each job a child, and a summary at the end.

`SweepCallback` is a Hydra callback (conf/hydra/callbacks/mlflow_sweep.yaml). Its multirun
hooks run in the launching process and its job hooks wherever the job runs, so it works the same
for the basic launcher and for joblib, Ray or SLURM: the parent run id reaches the jobs through
the sweep folder (`sweep_folder`), and the summary is read back from MLflow, which every job
wrote to (`results`; held in memory when this process wrote them all), then published on the
parent (`publish`). The parent run itself is a `GridRun`, the sweep core's `SweepRun`
(`sweep_run`).
"""

import gc
import logging
import time
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.utils import get_class
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from gatelab.errors import SweepNotStarted
from gatelab.redaction import redact_files, redact_output
from gatelab.sweeps import sweep_folder
from gatelab.sweeps.cells import create_cells, planned_cells
from gatelab.sweeps.publish import ParentRun, publish
from gatelab.sweeps.results import kill_if_running, read_results, written_results
from gatelab.sweeps.store_failures import STORE_FAILURES, disk_full
from gatelab.sweeps.summary import cell_keys, sweep_status
from gatelab.sweeps.sweep_run import SweepRun
from gatelab.tracking import records
from gatelab.tracking.children import child_store
from gatelab.tracking.links import ANSWER_METRIC
from gatelab.tracking.naming import (
    config_params,
    fixed_overrides,
    planned_jobs,
    sweep_run_name,
    swept_keys,
    user_tags,
    valid_tags,
)

log = logging.getLogger(__name__)


class GridRun(SweepRun):
    """A grid's parent run (the basic and vectorized sweepers): its summary is read back from
    the jobs' runs and published with its cells' (`publish`)."""

    what = "this sweep's jobs"

    @property
    def scored_by(self) -> str:
        # Without cells, a sweep's children are its jobs, each solved (1) or not (0).
        return ANSWER_METRIC if self.cells else "solved"

    def summarise(self, interrupted: bool, error: BaseException | None) -> tuple[str, str]:
        started = time.perf_counter()
        # This process wrote every job (a vectorized sweep's populations): as it wrote them.
        results = written_results(self.run_id, self.swept, self.planned)
        source = "held in memory"
        if results is None or interrupted or error is not None:
            results, source = read_results(self.client, self.run_id, self.swept), "from the store"
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
        summary_path = publish(parent, results, interrupted)
        log.info(
            "sweep summary timings: read %d jobs %.2f s (%s), publish %.2f s",
            len(results),
            read,
            source,
            time.perf_counter() - started - read,
        )
        # A sweep that failed before any job (its sweeper refused it) says why.
        if error is not None and not results:
            self.tag_error(error)
        if self.cells:
            self.what = "this sweep's cells"
        return sweep_status(results, interrupted), f"summary {summary_path}"


class SweepCallback(Callback):
    """Open a parent MLflow run when a multirun starts; summarise and close it when it ends."""

    def __init__(self) -> None:
        self.sweep: GridRun | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            self.start(config)
        except Exception as error:
            if self.sweep is not None:
                self.sweep.fail(error)
            # Hydra turns an Exception of this hook into a warning and sweeps on, its jobs
            # landing without a parent: stop the command instead (gatelab.cli reports it).
            raise SweepNotStarted(error) from error

    def start(self, config: DictConfig) -> None:
        """Open the sweep's parent run (`GridRun.open`) and its cells."""
        sweeper = get_class(config.hydra.sweeper._target_)
        if getattr(sweeper, "opens_parent_run", False):
            return  # the sweeper opens its own (hydra/sweeper=search: the study's run)
        # Hydra makes the sweeper, which checks its settings, only after this hook: a setting
        # out of range (`hydra.sweeper.max_jobs=0`) is refused before the parent run opens.
        if hasattr(sweeper, "check_settings"):
            sweeper.check_settings(config.hydra.sweeper)
        overrides = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
        swept = swept_keys(overrides)
        planned = planned_jobs(overrides)
        # The sweep's fixed settings: everything its jobs share (a swept key varies by job).
        fixed = {
            key: value
            for key, value in config_params(config, resolve=False).items()
            if key not in swept
        }
        self.sweep = GridRun.open(
            config,
            swept=swept,
            name=sweep_run_name(swept, fixed_overrides(overrides), planned),
            params=fixed,
            planned=planned,
        )
        if not self.sweep.cells:
            cells = planned_cells(overrides, cell_keys(swept))
            self.sweep.cells = create_cells(
                self.sweep.client,
                self.sweep.experiment_id,
                self.sweep.run_id,
                cells,
                params=fixed,
                tags=self.sweep.tags,
            )
            sweep_folder.record_cells(self.sweep.sweep_dir, self.sweep.cells)

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
        try:
            child_store(client.tracking_uri).write(sweep.experiment_id, record)
        except STORE_FAILURES as failure:
            if not disk_full(failure):
                raise
            # A full store takes no record; the command ends saying so, once (`sweep_run`).

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        redact_files([Path(config.hydra.sweep.dir) / "multirun.yaml"])
        if self.sweep is not None:
            self.sweep.finish()
