"""A sweep's parent run, one owner for every sweeper: opened, resumed, finished.

Each promise a sweep makes about its parent run is kept here once, whichever sweeper runs it: the
checks before it opens (a swept `tracking.*` refused, the store checked), the experiment (a big
sweep gets its own), the tags (the user's `tags`, MLflow's context tags, host and process, the
overrides with credentials redacted), resuming a folder's sweep, and how it ends: its status, the
error that ended it, and the link printed last. The basic and vectorized sweepers' callback
holds a `GridRun` (`sweeps.callback`); the search sweeper a `StudyRun`
(`sweeps.search.study_run`); each says what its summary is by `summarise`.
"""

import logging
import os
import shlex
import sys
from pathlib import Path

import mlflow
from mlflow.entities import Param
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from gatelab.config import validate
from gatelab.config.checks import refuse_swept_tracking
from gatelab.config.schemas import MAX_EXPERIMENT_NAME_LENGTH
from gatelab.errors import one_line
from gatelab.redaction import redact
from gatelab.sweeps import resume, sweep_folder
from gatelab.tracking import records, store
from gatelab.tracking.experiment import configure
from gatelab.tracking.links import runs_url, sweep_filter, ui_command
from gatelab.tracking.naming import overrides_text, user_tags, valid_tags
from gatelab.tracking.records import FAILED, KILLED, RUNNING

log = logging.getLogger(__name__)


class SweepRun:
    """A sweep's parent run and its cells' runs; subclasses say what `summarise` publishes."""

    # What the link printed last opens.
    what = "this sweep's jobs"

    def __init__(
        self,
        client: MlflowClient,
        run_id: str,
        experiment_id: str,
        *,
        swept: list[str],
        command: str,
        sweep_dir: Path,
        tags: dict[str, str],
        planned: int | None = None,
        cells: dict[str, str] | None = None,
        finished: dict[int, float] | None = None,
    ):
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.swept = swept
        self.command = command
        self.sweep_dir = sweep_dir
        # What every run of the sweep carries: the user's tags, MLflow's context, the host.
        self.tags = tags
        self.planned = planned
        # The run id of each cell of the grid, by cell name (`sweeps.cells`).
        self.cells = cells or {}
        # Jobs an earlier run of this sweep's folder finished, with their final loss.
        self.finished = finished or {}

    @classmethod
    def open(
        cls,
        config: DictConfig,
        *,
        swept: list[str],
        name: str,
        params: dict[str, str],
        planned: int | None = None,
        tags: dict[str, str] | None = None,
        resume_folder: bool = True,
    ) -> "SweepRun":
        """Check the store, then open the sweep's parent run (or, with `resume_folder`, re-open
        the one its folder names) and leave its id where the jobs find it.

        Args:
            config: the multirun's config, Hydra's node included.
            swept: the keys the sweep varies (refused if one is `tracking.*`).
            name: the run's name.
            params: what every job of the sweep shares.
            planned: the jobs (or trials) it makes, if known: a big sweep gets its own experiment.
            tags: the sweeper's own tags, beside the ones every sweep's run has.
        """
        cls.check(config, swept)
        overrides = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
        sweep_dir = Path(config.hydra.sweep.dir).absolute()
        experiment = sweep_experiment(
            config.tracking.experiment, sweep_dir, planned, config.tracking.own_experiment_above
        )
        experiment_id = configure(config.tracking.uri, experiment)
        client = MlflowClient()
        shared = {
            **records.context_tags(),
            **user_tags(valid_tags(config)),
            **store.process_tags(),
        }
        shared = {key: redact(value) for key, value in shared.items()}
        command = redact(shlex.join(["python", *sys.argv]))
        folder_kwargs = dict(swept=swept, command=command, sweep_dir=sweep_dir, planned=planned)
        if resume_folder and (sweep_dir / sweep_folder.PARENT_RUN_FILE).is_file():
            # The folder of an earlier run of this sweep: finish what it did not.
            resumed = resume.reopen(
                client, sweep_dir, overrides_text(overrides), mlflow.get_tracking_uri()
            )
            sweep = cls(
                client,
                resumed.run_id,
                resumed.experiment_id,
                tags=shared,
                cells=resumed.cells,
                finished=resumed.finished,
                **folder_kwargs,
            )
        else:
            run = client.create_run(
                experiment_id,
                run_name=redact(name),
                tags={
                    "sweep.command": command,
                    "sweep.params": ", ".join(swept),
                    "sweep.dir": str(sweep_dir),
                    "hydra.overrides": overrides_text(overrides),
                    **shared,
                    **{key: redact(value) for key, value in (tags or {}).items()},
                },
            )
            sweep = cls(client, run.info.run_id, experiment_id, tags=shared, **folder_kwargs)
            try:
                client.log_batch(
                    sweep.run_id,
                    params=[Param(key, redact(value)) for key, value in params.items()],
                )
                sweep_folder.record_parent_run_id(sweep_dir, sweep.run_id)
            except Exception as error:
                sweep.fail(error)
                raise
        os.environ[sweep_folder.PARENT_RUN_ENV] = sweep.run_id
        _open_sweeps.append(sweep)
        return sweep

    @staticmethod
    def check(config: DictConfig, swept: list[str]) -> None:
        """Refuse a sweep of `tracking.*`, a bad tracking setting or store: before any run or
        study is opened."""
        refuse_swept_tracking(swept)
        # The sweep's own store and experiment: checked before either is created. Creating them
        # (in `open`), before any job starts, avoids SQLite's races between parallel workers.
        validate(config.tracking)
        store.check(config.tracking.uri)

    @property
    def link(self) -> str:
        """The UI's address of this sweep's children."""
        return runs_url(self.experiment_id, sweep_filter(self.run_id))

    def summarise(self, interrupted: bool, error: BaseException | None) -> tuple[str, str]:
        """Publish the sweep's summary; return the parent's final status and the line that
        names its answer (printed last, before the link).

        Args:
            interrupted: stopped (Ctrl-C, SIGTERM) before its jobs ended.
            error: what ended it early, if anything (`tag_error` puts it on the parent).
        """
        raise NotImplementedError

    def finish(self, interrupted: bool = False, error: BaseException | None = None) -> None:
        """Summarise the sweep, end its runs and print, last, its answer and the link to it.

        Args:
            interrupted: a stop (Ctrl-C, SIGTERM): the runs still open end KILLED.
            error: what ended the sweep early, if anything: the parent's error tags say it.
        """
        if self not in _open_sweeps:
            return
        _open_sweeps.remove(self)
        os.environ.pop(sweep_folder.PARENT_RUN_ENV, None)
        try:
            if isinstance(error, KeyboardInterrupt):
                interrupted, error = True, None
            status, answer = self.summarise(interrupted, error)
        except KeyboardInterrupt:
            # A second stop while the summary is drawn: the runs still end, KILLED.
            self._end_open(KILLED)
            raise
        except Exception as failure:
            if not interrupted:
                self.tag_error(error or failure)
                self._end_open(FAILED)
                raise
            # A stop stays a stop: what the summary could not draw is not a failure.
            log.warning("the stopped sweep's summary is incomplete: %s", one_line(failure))
            self._end_open(KILLED)
            return
        self.client.set_terminated(self.run_id, status)
        log.info(
            "sweep run %s; %s; to compare: %s, then open %s at %s",
            self.run_id,
            answer,
            ui_command(),
            self.what,
            self.link,
        )

    def fail(self, error: BaseException) -> None:
        """End the sweep FAILED, `error` in its parent's tags, without a summary: it never ran."""
        if self in _open_sweeps:
            _open_sweeps.remove(self)
        os.environ.pop(sweep_folder.PARENT_RUN_ENV, None)
        self.tag_error(error)
        self._end_open(FAILED)

    def tag_error(self, cause: BaseException) -> None:
        """`cause` on the parent run, as its `failure_reason` and `error` tags."""
        for key, value in records.error_tags(cause).items():
            self.client.set_tag(self.run_id, key, value)

    def _end_open(self, status: str) -> None:
        """End the parent and its cells still RUNNING with `status`."""
        for run_id in [*self.cells.values(), self.run_id]:
            if self.client.get_run(run_id).info.status == RUNNING:
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


_open_sweeps: list[SweepRun] = []


def finish_open_sweeps(interrupted: bool = False, error: BaseException | None = None) -> None:
    """End the sweeps Hydra did not: when a job or the sweeper raised, Hydra skips
    `on_multirun_end` (and a sweeper's own `finish`)."""
    for sweep in list(_open_sweeps):
        sweep.finish(interrupted, error)
