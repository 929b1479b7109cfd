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
from gatelab.errors import one_line
from gatelab.redaction import redact
from gatelab.sweeps import own_experiment, resume, sweep_folder
from gatelab.sweeps.store_failures import STORE_FAILURES, SweepEndError, disk_full, store_reason
from gatelab.tracking import records, store
from gatelab.tracking.experiment import configure
from gatelab.tracking.links import ANSWER_METRIC, children_url, share_children_view, ui_command
from gatelab.tracking.naming import overrides_text, user_tags, valid_tags
from gatelab.tracking.statuses import FAILED, FINISHED, KILLED, RUNNING

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
        # The run that points to this sweep from the config's experiment, when the sweep has
        # an experiment of its own (`sweeps.own_experiment`).
        self.pointer: str | None = None

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
        experiment = own_experiment.sweep_experiment(
            config.tracking.experiment,
            sweep_dir,
            swept,
            planned,
            config.tracking.own_experiment_above,
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
            share_children_view(client, sweep.experiment_id, sweep.run_id, answer_params(swept))
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
                # What the link printed last opens: its children, one bar each, best first.
                share_children_view(client, experiment_id, sweep.run_id, answer_params(swept))
                if experiment != config.tracking.experiment:
                    own_experiment.describe(client, experiment_id, sweep.run_id, swept, planned)
                sweep_folder.record_parent_run_id(sweep_dir, sweep.run_id)
            except Exception as error:
                sweep.fail(error)
                raise
        if experiment != config.tracking.experiment:
            sweep.pointer = own_experiment.open_pointer(
                client, config.tracking.experiment, experiment, sweep.run_id, shared
            )
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
    def scored_by(self) -> str:
        """The metric the sweep's children are compared by, in the view its link opens."""
        return ANSWER_METRIC

    @property
    def link(self) -> str:
        """The UI's address of this sweep's children, as `share_children_view` shows them."""
        return children_url(self.experiment_id, self.run_id)

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

        What goes wrong here (a summary that fails, a store that cannot record the end) is kept
        for `finish_open_sweeps` to raise: Hydra turns a callback's exception into a warning.

        Args:
            interrupted: a stop (Ctrl-C, SIGTERM): the runs still open end KILLED first, then
                the summary draws what it can.
            error: what ended the sweep early, if anything: the parent's error tags say it.
        """
        if self not in _open_sweeps:
            return
        _open_sweeps.remove(self)
        os.environ.pop(sweep_folder.PARENT_RUN_ENV, None)
        if isinstance(error, KeyboardInterrupt):
            interrupted, error = True, None
        if interrupted and not self._end_open(KILLED):
            return  # the store cannot record a summary either
        try:
            status, answer = self.summarise(interrupted, error)
        except KeyboardInterrupt:
            # A second stop while the summary is drawn: the runs still end, KILLED.
            self._end_open(KILLED)
            raise
        except Exception as failure:
            if not interrupted and error is None:
                _keep(failure)
            elif not disk_full(failure):  # a full disk is the line the command ends with
                # A stop stays a stop, and what ended the sweep is the error the user reads.
                log.warning("the sweep's summary is incomplete: %s", one_line(failure))
            if not interrupted:
                self._end_open(FAILED, error or failure)
            return
        if error is not None and status == FINISHED:
            status = FAILED  # every job it ran ended well, but it did not run them all
        if not self._end_open(status, error):
            return
        if self.pointer is not None:
            own_experiment.tell_pointer(self.client, self.pointer, self.run_id)
        # The link's view, as the sweep's children turned out: cells, trials, or its jobs.
        share_children_view(
            self.client, self.experiment_id, self.run_id, answer_params(self.swept), self.scored_by
        )
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
        self._end_open(FAILED, error)

    def tag_error(self, cause: BaseException, run_id: str | None = None) -> None:
        """`cause` on the parent run (or `run_id`), as its `failure_reason` and `error` tags."""
        for key, value in records.error_tags(cause).items():
            self.client.set_tag(run_id or self.run_id, key, value)

    def _end_open(self, status: str, cause: BaseException | None = None) -> bool:
        """End the parent and its cells still RUNNING with `status`, and put `cause` (what
        ended the sweep, if anything) on the parent and on each cell it ends FAILED.

        Each run is ended first and told why after, and a run the store refuses does not keep
        the others RUNNING. Returns whether every run ended. A store that could not end them
        (a full disk, a server gone), or that is full, leaves `finish_open_sweeps` one line to
        raise: which runs stay RUNNING, and what to do.
        """
        left: list[str] = []
        refusal: BaseException | None = None
        pointer = [self.pointer] if self.pointer is not None else []
        for run_id in [*self.cells.values(), self.run_id, *pointer]:
            try:
                ended = self.client.get_run(run_id).info.status == RUNNING
                if ended:
                    self.client.set_terminated(run_id, status)
            except STORE_FAILURES as failure:
                refusal = refusal or failure
                left.append(run_id)
                continue
            if cause is not None and (run_id == self.run_id or (ended and status == FAILED)):
                try:
                    self.tag_error(cause, run_id)
                except STORE_FAILURES as failure:  # ended all the same; the line says why
                    refusal = refusal or failure
        store = redact(self.client.tracking_uri)
        again = f"run the same command again with hydra.sweep.dir={self.sweep_dir}"
        if left:
            reason = store_reason(refusal)
            # What ended the sweep, unless the store's refusal says it already.
            first = f"{one_line(cause)}; " if cause and store_reason(cause) != reason else ""
            when = "free space" if disk_full(refusal) else "once it can be written"
            _keep(
                SweepEndError(
                    f"{first}the store {store} cannot be written ({reason}): the runs this "
                    f"command had open stay RUNNING; {when}, then {again} to finish the "
                    "sweep, or end them with python -m gatelab.runs mark-dead-killed"
                ),
                refusal,
            )
            return False
        full = next((error for error in (cause, refusal) if disk_full(error)), None)
        if full is not None and not isinstance(full, OSError):  # an OSError is one line already
            _keep(
                SweepEndError(
                    f"the store {store} is full ({store_reason(full)}): the runs this command "
                    f"had open ended {status}; free space, then {again} to finish the sweep"
                ),
                full,
            )
        return True


def answer_params(swept: list[str]) -> list[str]:
    """The swept keys a sweep's children differ by: not `seed`, the seeds a cell counts over."""
    return [key for key in swept if key != "seed"]


_open_sweeps: list[SweepRun] = []
# What ending a sweep met and could not raise itself (from Hydra's callback, a warning).
_unreported: list[BaseException] = []


def _keep(error: BaseException, cause: BaseException | None = None) -> None:
    """Keep `error` (raised from `cause`, if given) for `finish_open_sweeps` to raise."""
    if cause is not None:
        error.__cause__ = cause
    _unreported.append(error)


def finish_open_sweeps(interrupted: bool = False, error: BaseException | None = None) -> None:
    """End the sweeps Hydra did not (when a job or the sweeper raised, Hydra skips
    `on_multirun_end` and a sweeper's own `finish`), then raise what ending any sweep met:
    a summary that failed, or the one line of a store that could not record the end."""
    for sweep in list(_open_sweeps):
        sweep.finish(interrupted, error)
    if _unreported:
        first = _unreported[0]
        _unreported.clear()
        raise first
