"""Sweeps in MLflow: one parent run per Hydra multirun, each job a child, and a summary at the end.

`SweepCallback` is a Hydra callback (conf/hydra/callbacks/mlflow_sweep.yaml). Its multirun
hooks run in the launching process and its job hooks wherever the job runs, so it works the same
for the basic launcher and for joblib, Ray or SLURM: the parent run id reaches the jobs through
a file in the sweep folder (and the environment, where it is inherited), and the summary is read
back from MLflow, which every job wrote to (the loss curves from each job's `loss.csv` when its
folder is at hand, being faster to read).
"""

import csv
import functools
import gc
import logging
import math
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from mlflow.entities import Metric, Param, Run, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from gatelab import plots, store, tracking
from gatelab.config import ConfigError, is_valid_tag, validate
from gatelab.history import LOSS_FILE, load_losses

log = logging.getLogger(__name__)

PARENT_RUN_ENV = "GATELAB_SWEEP_RUN_ID"
# In the sweep folder: workers started apart from the launching process (RQ, Ray on several
# nodes, SLURM with --export=NONE) do not inherit its environment, but they see the folder.
PARENT_RUN_FILE = "mlflow_parent_run_id"
SUMMARY_FILE = "sweep_summary.csv"
# Each job's final decision boundary, written by the pipeline; the gallery reads it back.
BOUNDARY_FILE = "boundary.npz"
# The gallery shows at most this many groups (rows) and jobs per group (columns).
GALLERY_ROWS = 8
GALLERY_COLUMNS = 8


def parent_run_id(sweep_dir: str | Path) -> str | None:
    """The MLflow run of the sweep whose folder is `sweep_dir` (`hydra.sweep.dir`), if any."""
    if os.environ.get(PARENT_RUN_ENV):
        return os.environ[PARENT_RUN_ENV]
    path = Path(sweep_dir) / PARENT_RUN_FILE
    if not path.is_file():
        return None
    return path.read_text().strip() or None


def record_parent_run_id(sweep_dir: Path, run_id: str) -> None:
    """Write the parent run id where `parent_run_id` finds it, whole or not at all."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    path = sweep_dir / PARENT_RUN_FILE
    if path.is_file():
        log.warning("%s already holds a sweep's run id: two sweeps share this folder", path)
    new = sweep_dir / f".{PARENT_RUN_FILE}.{os.getpid()}"
    new.write_text(run_id + "\n")
    os.replace(new, path)


def swept_keys(overrides: list[str]) -> list[str]:
    """The keys a multirun sweeps over, in command-line order: `seed=0,1` gives `seed`."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [override.key_or_group for override in parsed if override.is_sweep_override()]


def fixed_overrides(overrides: list[str]) -> list[str]:
    """The overrides of a multirun that every job shares."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [
        text
        for text, override in zip(overrides, parsed, strict=True)
        if not override.is_sweep_override()
    ]


def planned_jobs(overrides: list[str]) -> int | None:
    """How many jobs the basic sweeper makes of `overrides`; None when it cannot tell."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    sweeps = [override for override in parsed if override.is_sweep_override()]
    # A glob needs the config's options and an interval is for other sweepers (Optuna...).
    countable = (ValueType.CHOICE_SWEEP, ValueType.SIMPLE_CHOICE_SWEEP, ValueType.RANGE_SWEEP)
    if any(override.value_type not in countable for override in sweeps):
        return None
    return math.prod(len(list(override.sweep_string_iterator())) for override in sweeps)


def swept_values(overrides: list[str], keys: list[str]) -> dict[str, str]:
    """A job's value of each swept key, from its overrides, in the order of `keys`."""
    found = dict(map(_key_and_value, overrides))
    return {key: found[key] for key in keys if key in found}


@functools.lru_cache(maxsize=100_000)
def _key_and_value(override: str) -> tuple[str, str]:
    # Cached: the jobs of a big sweep repeat the same few overrides (`lr=0.1` in 1,000 of them),
    # and Hydra's parser takes about 1 ms for each.
    (parsed,) = OverridesParser.create().parse_overrides([override])
    return parsed.key_or_group, parsed.get_value_element_as_str()


def swept_keys_of(parent_run_id: str) -> list[str]:
    """The keys the sweep with this parent run varies, from its tag `sweep.params`."""
    listed = MlflowClient().get_run(parent_run_id).data.tags.get("sweep.params", "")
    return [key for key in listed.split(", ") if key]


def refuse_swept_tracking(swept: list[str]) -> None:
    """A sweep has one parent run in one store and experiment: `tracking.*` cannot vary."""
    for key in swept:
        if key == "tracking" or key.startswith("tracking."):
            raise ConfigError(
                f"{key} cannot be swept: a sweep's runs share one store and experiment; "
                "run one sweep per value instead"
            )


@dataclass(frozen=True)
class JobResult:
    """One row of the sweep summary, read back from the job's MLflow run."""

    number: int
    name: str
    values: dict[str, str]
    loss: float
    accuracy: float
    epochs_to_solve: int | None
    status: str
    run_id: str
    output_dir: str = ""
    overrides: str = ""

    @property
    def solved(self) -> bool:
        return self.accuracy == 1.0


class SweepCallback(Callback):
    """Open a parent MLflow run when a multirun starts; summarise and close it when it ends."""

    def __init__(self) -> None:
        self.client: MlflowClient | None = None
        self.run_id: str | None = None
        self.swept: list[str] = []
        self.sweep_dir: Path | None = None
        # Loss curves by child run id that a sweeper already holds (the vectorized one does).
        self.known_losses: dict[str, np.ndarray] = {}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            self.start(config)
        except Exception as error:
            # Hydra turns an exception of this hook into a warning and sweeps on, its jobs
            # landing without a parent: stop with the error instead.
            from gatelab.cli import EXIT_FAILURE, exit_with  # (cli imports this module)

            if self.run_id is not None:
                self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.FAILED))
            if isinstance(error, ConfigError):
                exit_with(error)
            exit_with(
                RuntimeError(f"the sweep did not start: {type(error).__name__}: {error}"),
                EXIT_FAILURE,
            )

    def start(self, config: DictConfig) -> None:
        """Check the store, then open the parent run and leave its id where the jobs find it."""
        overrides = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
        self.swept = swept_keys(overrides)
        refuse_swept_tracking(self.swept)
        # The sweep's own store and experiment: checked before either is created.
        validate(config.tracking)
        store.check(config.tracking.uri)
        # Creating the store (schema migration) and the experiment here, before any job
        # starts, avoids SQLite's races when parallel workers would otherwise both try.
        experiment_id = tracking.configure(config.tracking.uri, config.tracking.experiment)
        self.client = MlflowClient()
        self.sweep_dir = Path(config.hydra.sweep.dir).absolute()
        self.command = tracking.redact(shlex.join(["python", *sys.argv]))
        run = self.client.create_run(
            experiment_id,
            run_name=tracking.sweep_run_name(
                self.swept, fixed_overrides(overrides), planned_jobs(overrides)
            ),
            tags={
                "sweep.command": self.command,
                "sweep.params": ", ".join(self.swept),
                "sweep.dir": str(self.sweep_dir),
                "hydra.overrides": tracking.run_name(overrides),
                **tracking.user_tags(valid_tags(config)),
                **store.process_tags(),
            },
        )
        self.run_id = run.info.run_id
        record_parent_run_id(self.sweep_dir, self.run_id)
        # The sweep's fixed settings: everything its jobs share (a swept key varies by job).
        fixed = {
            key: value
            for key, value in tracking.config_params(config, resolve=False).items()
            if key not in self.swept
        }
        self.client.log_batch(
            self.run_id, params=[Param(key, str(value)) for key, value in fixed.items()]
        )
        os.environ[PARENT_RUN_ENV] = self.run_id
        _open_sweeps.append(self)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra has just written the job's config files, credentials in `tracking.uri` included.
        tracking.redact_output()
        hydra = config.hydra
        files = [Path(hydra.sweep.dir) / "multirun.yaml"]
        if hydra.output_subdir is not None:
            folder = Path(hydra.runtime.output_dir) / hydra.output_subdir
            files += [folder / name for name in ("config.yaml", "hydra.yaml", "overrides.yaml")]
        tracking.redact_files(files)
        # Collect what earlier jobs left, then freeze the survivors (TensorFlow, the compiled
        # loop, caches): full collections during the job then skip them. Without this, a
        # sweep spent ~0.1 s a job walking TensorFlow's objects again and again.
        gc.collect()
        gc.freeze()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        # A job that failed before its run started (a bad value in its config) still gets a
        # FAILED child, so the sweep shows every job. Runs in whichever process ran the job.
        parent = parent_run_id(config.hydra.sweep.dir)
        if parent is None or job_return.status != JobStatus.FAILED:
            return
        number = str(config.hydra.job.num)
        client = MlflowClient()
        experiment_id = client.get_run(parent).info.experiment_id
        same_job = f"tags.mlflow.parentRunId = '{parent}' and tags.`hydra.job.num` = '{number}'"
        if client.search_runs([experiment_id], filter_string=same_job):
            return
        # The public `return_value` re-raises and prints Hydra's line about the job again.
        error = job_return._return_value
        overrides = list(job_return.overrides or [])
        name = tracking.child_run_name(swept_values(overrides, swept_keys_of(parent)))
        # Unresolved: the job may have failed on the very interpolation resolving would raise.
        params = tracking.config_params(config, resolve=False)
        child = client.create_run(
            experiment_id,
            run_name=name,
            tags={
                "mlflow.parentRunId": parent,
                "hydra.overrides": tracking.run_name(overrides),
                "hydra.job.num": number,
                **tracking.user_tags(valid_tags(config)),
                **tracking.error_tags(error),
            },
        )
        client.log_batch(
            child.info.run_id, params=[Param(key, str(value)) for key, value in params.items()]
        )
        client.set_terminated(child.info.run_id, RunStatus.to_string(RunStatus.FAILED))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        tracking.redact_files([Path(config.hydra.sweep.dir) / "multirun.yaml"])
        self.finish()

    def finish(self, interrupted: bool = False) -> None:
        """Summarise the jobs, log the summary to the parent run and end it."""
        if self not in _open_sweeps:
            return
        _open_sweeps.remove(self)
        os.environ.pop(PARENT_RUN_ENV, None)
        try:
            results = self.read_results()
            if interrupted:
                results = [self.kill_if_running(result) for result in results]
            self.report(results)
        except BaseException as error:
            for key, value in tracking.error_tags(error).items():
                self.client.set_tag(self.run_id, key, value)
            self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.FAILED))
            raise
        status = sweep_status(results, interrupted)
        self.client.set_terminated(self.run_id, RunStatus.to_string(status))

    def kill_if_running(self, result: JobResult) -> JobResult:
        """End a stopped sweep's job KILLED if its run is still RUNNING."""
        if result.status != "RUNNING":
            return result
        # A stopped sweep's jobs stop with it (joblib's workers do); a job that goes on
        # elsewhere, as on SLURM, sets its own status again when it ends.
        killed = RunStatus.to_string(RunStatus.KILLED)
        self.client.set_terminated(result.run_id, killed)
        return replace(result, status=killed)

    def read_results(self) -> list[JobResult]:
        experiment_id = self.client.get_run(self.run_id).info.experiment_id
        runs = self.client.search_runs(
            [experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{self.run_id}'",
            max_results=50000,
        )
        results = [self._result(run) for run in runs]
        return sorted(results, key=lambda result: result.number)

    def _result(self, run: Run) -> JobResult:
        metrics, tags = run.data.metrics, run.data.tags
        status = run.info.status
        if status == "FAILED":
            status = f"FAILED: {tags.get('failure_reason', 'error')}"
        epochs_to_solve = metrics.get("epochs_to_solve")
        return JobResult(
            overrides=tags.get("hydra.overrides", ""),
            number=int(tags.get("hydra.job.num", -1)),
            name=run.info.run_name,
            values={key: _swept_value(run, key) for key in self.swept},
            loss=metrics.get("loss", float("nan")),
            accuracy=metrics.get("accuracy", float("nan")),
            epochs_to_solve=int(epochs_to_solve) if epochs_to_solve is not None else None,
            status=status,
            run_id=run.info.run_id,
            output_dir=tags.get("hydra.output_dir", ""),
        )

    def report(self, results: list[JobResult]) -> None:
        """Print the summary, write it as CSV in the sweep folder and log it with its plots."""
        rows = [summary_row(result, self.swept) for result in results]
        log.info("sweep summary (%d jobs):\n%s", len(rows), format_table(rows))
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        summary_path = self.sweep_dir / SUMMARY_FILE
        with summary_path.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else ["job"])
            writer.writeheader()
            writer.writerows(rows)
        self.client.log_artifact(self.run_id, str(summary_path))
        metrics = sweep_metrics(results, self.swept)
        log.info("%s", outcome_line(metrics))
        timestamp = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(key, value, timestamp, 0) for key, value in metrics.items()],
        )
        experiment_id = self.client.get_run(self.run_id).info.experiment_id
        link = tracking.runs_url(experiment_id, tracking.sweep_filter(self.run_id))
        self.client.set_tag(
            self.run_id,
            "mlflow.note.content",
            description(results, self.swept, metrics, self.run_id, self.command, link),
        )
        for figure_name, figure in self.figures(results).items():
            self.client.log_figure(self.run_id, figure, figure_name)
        log.info(
            "sweep run %s; summary %s; to compare: %s, then open this sweep's jobs at %s",
            self.run_id,
            summary_path,
            tracking.ui_command(),
            link,
        )

    def figures(self, results: list[JobResult]) -> dict[str, Any]:
        compared = [key for key in self.swept if key != "seed"]
        figures = {}
        for key in compared:
            values, solved, jobs = success_counts(results, key)
            figures[f"success_rate_by_{key}.png"] = plots.success_rate_bars(
                values, solved, jobs, key
            )
        if len(compared) >= 2:
            rows, columns, rates = success_grid(results, compared[0], compared[1])
            name = f"success_rate_{compared[0]}_x_{compared[1]}.png"
            figures[name] = plots.success_heatmap(rows, columns, rates, compared[0], compared[1])
        colour_key = (
            "optimizer.learning_rate"
            if "optimizer.learning_rate" in compared
            else (compared[0] if compared else None)
        )
        figures["loss_curves.png"] = plots.overlaid_loss_curves(
            [self.loss_history(result) for result in results],
            [result.values.get(colour_key, "") for result in results] if colour_key else None,
            colour_key,
        )
        group_key = colour_key or "seed"
        if results and group_key in self.swept:
            values, _, jobs = success_counts(results, group_key)
            epochs = [
                [
                    result.epochs_to_solve
                    for result in results
                    if result.values[group_key] == value
                    and result.solved
                    and result.epochs_to_solve
                ]
                for value in values
            ]
            figures["epochs_to_solve.png"] = plots.epochs_to_solve_by_value(
                values, epochs, jobs, group_key
            )
        gallery = self.gallery(results)
        if gallery is not None:
            figures["decision_boundaries.png"] = gallery
        return figures

    def boundary(self, result: JobResult) -> dict[str, np.ndarray] | None:
        """The job's final decision boundary, from its folder or else its run's artifacts."""
        path = Path(result.output_dir) / BOUNDARY_FILE
        if not (result.output_dir and path.is_file()):
            names = {artifact.path for artifact in self.client.list_artifacts(result.run_id)}
            if BOUNDARY_FILE not in names:
                return None
            folder = tempfile.mkdtemp(prefix="gatelab-")
            path = Path(self.client.download_artifacts(result.run_id, BOUNDARY_FILE, folder))
        with np.load(path) as arrays:
            return {name: arrays[name] for name in arrays.files}

    def gallery(self, results: list[JobResult]) -> Any:
        """`decision_boundaries.png`: a panel per job, seeds along a row, a row per setting."""
        # With seeds swept, a row holds one setting's seeds; else a row per value of the first key.
        row_keys = [key for key in self.swept if key != "seed"]
        if "seed" not in self.swept:
            row_keys = self.swept[:1]
        groups: dict[str, list[JobResult]] = {}
        for result in sorted(
            results,
            key=lambda result: [plots.numeric_first(result.values[key]) for key in self.swept],
        ):
            label = tracking.child_run_name({key: result.values[key] for key in row_keys})
            groups.setdefault(label, []).append(result)
        panels: dict[str, list[plots.Panel]] = {}
        shown = 0
        table = None
        for label, members in list(groups.items())[:GALLERY_ROWS]:
            for result in members[:GALLERY_COLUMNS]:
                arrays = self.boundary(result)
                if arrays is None:
                    continue
                table = arrays
                view = plots.BoundaryView(
                    outputs=arrays["outputs"].astype(np.float32),
                    hidden_lines=arrays["hidden_lines"],
                )
                panels.setdefault(label, []).append(plots.Panel(result.name, view, result.solved))
                shown += 1
        if table is None:
            return None
        hidden = len(results) - shown
        footnote = ""
        if hidden:
            shown_ids = {
                result.run_id
                for members in list(groups.values())[:GALLERY_ROWS]
                for result in members[:GALLERY_COLUMNS]
            }
            rest = [result for result in results if result.run_id not in shown_ids]
            footnote = (
                f"{shown} of {len(results)} jobs shown; the other {len(rest)}: "
                f"{sum(result.solved for result in rest)} solved (see sweep_summary.csv)"
            )
        solved = sum(result.solved for result in results)
        return plots.boundary_gallery(
            panels,
            table["inputs"],
            table["targets"],
            f"decision boundaries: {solved}/{len(results)} jobs solved",
            footnote,
        )

    def loss_history(self, result: JobResult) -> np.ndarray:
        """The job's losses from its output folder; from its run's loss.csv when elsewhere."""
        # Not from metric `loss`: it holds only every few epochs' (tracking.max_loss_points).
        if result.run_id in self.known_losses:
            return self.known_losses[result.run_id]
        path = Path(result.output_dir) / LOSS_FILE
        if result.output_dir and path.is_file():
            return load_losses(path)
        with tempfile.TemporaryDirectory() as folder:
            try:
                path = self.client.download_artifacts(result.run_id, LOSS_FILE, folder)
            except (OSError, MlflowException):
                return np.array([])  # the job failed before it trained
            return load_losses(Path(path))


_open_sweeps: list[SweepCallback] = []


def open_sweep() -> SweepCallback | None:
    """The sweep callback whose multirun this process is running, if any."""
    return _open_sweeps[-1] if _open_sweeps else None


def finish_open_sweeps(interrupted: bool = False) -> None:
    """End sweeps Hydra did not: when a job raised, Hydra skips `on_multirun_end`."""
    for sweep in list(_open_sweeps):
        sweep.finish(interrupted)


def sweep_status(results: list[JobResult], interrupted: bool) -> int:
    """KILLED when stopped before its jobs ended, FAILED when a job raised, else FINISHED."""
    # A diverged job is a result of the sweep, not a failure of it.
    if interrupted or any(result.status in ("KILLED", "RUNNING") for result in results):
        return RunStatus.KILLED
    if any(result.status == "FAILED: error" for result in results):
        return RunStatus.FAILED
    return RunStatus.FINISHED


def _swept_value(run: Run, key: str) -> str:
    # A swept config group (model=perceptron,mlp) is a tag; a swept value is a param.
    return run.data.params.get(key, run.data.tags.get(f"hydra.choices.{key}", ""))


def summary_row(result: JobResult, swept: list[str]) -> dict[str, Any]:
    """A job's line of the summary: swept values and results first, names and ids last."""
    return {
        "job": result.number,
        **{key: result.values.get(key, "") for key in swept},
        "solved": int(result.solved),
        "accuracy": f"{result.accuracy:.3g}",
        "loss": f"{result.loss:.6g}",
        "epochs_to_solve": result.epochs_to_solve if result.epochs_to_solve else "",
        "status": result.status,
        "run_name": result.name,
        "overrides": result.overrides,
        "run_id": result.run_id,
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no jobs)"
    columns = [column for column in rows[0] if column not in ("run_name", "overrides", "run_id")]
    widths = {
        column: max(len(column), *(len(str(row[column])) for row in rows)) for column in columns
    }
    lines = ["  ".join(column.ljust(widths[column]) for column in columns)]
    lines += [
        "  ".join(str(row[column]).ljust(widths[column]) for column in columns) for row in rows
    ]
    return "\n".join(lines)


def distinct_values(results: list[JobResult], key: str) -> list[str]:
    """The values a swept key took, numbers in numeric order."""
    return sorted({result.values[key] for result in results}, key=plots.numeric_first)


def success_rates(results: list[JobResult], key: str) -> tuple[list[str], list[float]]:
    """Fraction of jobs (of seeds, in a seed sweep) reaching 100% accuracy per value of `key`."""
    values, solved, jobs = success_counts(results, key)
    return values, [k / n for k, n in zip(solved, jobs, strict=True)]


def success_counts(results: list[JobResult], key: str) -> tuple[list[str], list[int], list[int]]:
    """Per value of `key`: how many jobs solved, and how many jobs there were."""
    values = distinct_values(results, key)
    groups = [[result for result in results if result.values[key] == value] for value in values]
    solved = [sum(result.solved for result in group) for group in groups]
    return values, solved, [len(group) for group in groups]


def sweep_metrics(results: list[JobResult], swept: list[str]) -> dict[str, float]:
    """The parent's metrics: jobs, solved jobs, success rate (overall and per swept value) and
    the median and quartiles of `epochs_to_solve` over the solved jobs."""
    solved = [result for result in results if result.solved]
    metrics = {
        "jobs": float(len(results)),
        "solved_jobs": float(len(solved)),
        "success_rate": round(len(solved) / len(results), 4) if results else 0.0,
    }
    epochs = [result.epochs_to_solve for result in solved if result.epochs_to_solve]
    if epochs:
        low, median, high = np.percentile(epochs, [25, 50, 75])
        metrics |= {
            "epochs_to_solve_median": float(median),
            "epochs_to_solve_p25": float(low),
            "epochs_to_solve_p75": float(high),
        }
    names = tracking.short_keys(swept)
    for key in swept:
        if key == "seed":
            continue
        values, solved_counts, jobs = success_counts(results, key)
        for value, k, n in zip(values, solved_counts, jobs, strict=True):
            name = tracking.metric_key(f"success_rate/{names[key]}_{value}")
            metrics[name] = round(k / n, 4)
    return metrics


def outcome_line(metrics: dict[str, float]) -> str:
    """`solved 11/15 jobs (0.7333); epochs_to_solve over solved: median 640, quartiles 420-900`."""
    line = (
        f"solved {int(metrics['solved_jobs'])}/{int(metrics['jobs'])} jobs "
        f"({metrics['success_rate']:g})"
    )
    if "epochs_to_solve_median" in metrics:
        line += (
            f"; epochs_to_solve over the solved: median {metrics['epochs_to_solve_median']:g}, "
            f"quartiles {metrics['epochs_to_solve_p25']:g}-{metrics['epochs_to_solve_p75']:g}"
        )
    return line


def description(
    results: list[JobResult],
    swept: list[str],
    metrics: dict[str, float],
    run_id: str,
    command: str,
    link: str,
) -> str:
    """The parent's Markdown description (its Overview page): what was swept, how it went."""
    lines = [
        f"Sweep of {' x '.join(f'`{key}`' for key in swept) or 'nothing'}, "
        f"{len(results)} jobs: `{command}`",
        "",
        f"**{outcome_line(metrics)}** (solved: every output on the right side of 0.5).",
    ]
    for key in [key for key in swept if key != "seed"]:
        values, solved, jobs = success_counts(results, key)
        lines += ["", f"| `{key}` | solved | success rate | median epochs_to_solve |"]
        lines.append("|---|---|---|---|")
        for value, k, n in zip(values, solved, jobs, strict=True):
            epochs = [
                result.epochs_to_solve
                for result in results
                if result.values[key] == value and result.solved and result.epochs_to_solve
            ]
            median = f"{np.median(epochs):g}" if epochs else "-"
            lines.append(f"| {value} | {k}/{n} | {k / n:.2f} | {median} |")
    solved = [result for result in results if result.solved and result.epochs_to_solve]
    if solved:
        best = min(solved, key=lambda result: result.epochs_to_solve)
        lines += ["", f"Best job: `{best.name}`, solved at epoch {best.epochs_to_solve}."]
    elif results:
        best = min(results, key=lambda result: result.loss if np.isfinite(result.loss) else 1e30)
        lines += ["", f"No job solved; the lowest final loss: `{best.name}` ({best.loss:.4g})."]
    lines += [
        "",
        "To see only this sweep's jobs, search the runs table for "
        f'`tags.mlflow.parentRunId = "{run_id}"` ([open it]({link})). '
        "In the Chart view, group by a swept param and chart `solved`: "
        "its mean per group is the success rate.",
    ]
    return "\n".join(lines)


def valid_tags(config: DictConfig) -> list[str]:
    """The config's `tags` that MLflow accepts (a failed job's config may hold others)."""
    tags = OmegaConf.select(config, "tags", default=[]) or []
    return [tag for tag in tags if isinstance(tag, str) and is_valid_tag(tag)]


def success_grid(
    results: list[JobResult], row_key: str, column_key: str
) -> tuple[list[str], list[str], np.ndarray]:
    rows = distinct_values(results, row_key)
    columns = distinct_values(results, column_key)
    rates = np.full((len(rows), len(columns)), np.nan)
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            cell = [
                result.solved
                for result in results
                if result.values[row_key] == row and result.values[column_key] == column
            ]
            if cell:
                rates[i, j] = np.mean(cell)
    return rows, columns, rates
