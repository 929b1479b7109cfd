"""A study in MLflow: one parent run per command, one child per trial with its seeds' outcomes.

A trial's child is written through `tracking.writer` as a `RunRecord`, as a job's is; its seed
members are not runs (100 trials x 100 seeds would be 10,000 of them) but one `seeds.csv`. The
parent holds the study's settings, every trial as `trials.csv`, the best trial and Optuna's figures.
"""

import csv
import io
import logging
import warnings
from dataclasses import dataclass
from datetime import datetime

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)
import numpy as np  # noqa: E402
import optuna  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
from mlflow.entities import Param, RunStatus  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402
from optuna.visualization import matplotlib as optuna_figures  # noqa: E402

from gatelab.redaction import redact  # noqa: E402
from gatelab.sweeps.search_space import SearchSpace  # noqa: E402
from gatelab.sweeps.search_study import Settings  # noqa: E402
from gatelab.sweeps.summary import JobResult  # noqa: E402
from gatelab.sweeps.vectorized import Timings  # noqa: E402
from gatelab.tracking import records, store, writer  # noqa: E402
from gatelab.tracking.naming import short_keys  # noqa: E402

log = logging.getLogger(__name__)

# On every trial's run: the study's parent run (a filter for all its trials).
SEARCH_TAG = "gatelab.search"
SEEDS_FILE = "seeds.csv"
TRIALS_FILE = "trials.csv"


def trial_name(number: int, values: dict[str, object]) -> str:
    """`trial 17 lr=0.43 momentum=0.81`: the trial's number and its searched values."""
    names = short_keys(list(values))
    shown = [f"{names[key]}={_short(value)}" for key, value in values.items()]
    return " ".join([f"trial {number}", *shown])


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def open_study_run(
    client: MlflowClient,
    experiment_id: str,
    *,
    study_name: str,
    settings: Settings,
    space: SearchSpace,
    command: str,
    sweep_dir: str,
) -> str:
    """Create the study's parent run with its settings as params; return its id. The study's
    runs an earlier process on this host left RUNNING when it died are ended KILLED first."""
    for run in store.dead_runs(client, [experiment_id]):
        if run.data.tags.get("optuna.study_name") == redact(study_name):
            store.mark_killed(client, run)
    run = client.create_run(
        experiment_id,
        run_name=f"search {' '.join(short_keys(list(space.distributions)).values())}",
        tags={
            **records.context_tags(),
            "sweep.command": command,
            "sweep.dir": sweep_dir,
            # The searched keys name a per-job trial's run, as a sweep's swept keys do.
            "sweep.params": ", ".join(space.distributions),
            "optuna.study_name": redact(study_name),
            "hydra.overrides": " ".join(space.fixed),
            # Where it runs: `python -m gatelab.runs mark-dead-killed` finds it if it dies.
            **store.process_tags(),
        },
    )
    params = {
        "sampler": settings.sampler,
        "direction": ", ".join(settings.directions),
        "objective": ", ".join(settings.objective),
        "n_trials": str(settings.n_trials),
        "batch_size": str(settings.batch_size),
        "study_name": redact(study_name)[:6000],
        "storage": redact(settings.storage or "sqlite:///optuna.db"),
        "seeds": str(len(space.seeds)) if space.seeds is not None else "none",
        **{f"search.{key}": text for key, text in space.texts.items()},
    }
    client.log_batch(run.info.run_id, params=[Param(key, value) for key, value in params.items()])
    return run.info.run_id


@dataclass(frozen=True)
class TrialOutcome:
    """A told trial, what its child run shows: its seeds' numbers, or the error it failed with."""

    trial: FrozenTrial
    metrics: dict[str, float]
    seeds: list[JobResult]
    error: BaseException | None = None


def trial_record(
    parent_run_id: str, params: dict[str, str], outcome: TrialOutcome
) -> records.RunRecord:
    """A trial's child run: its values as params, the objective metrics, its Optuna state."""
    trial = outcome.trial
    tags = {
        **records.context_tags(),  # `mlflow.user`, `mlflow.source.*`, as a job's run has them
        "mlflow.parentRunId": parent_run_id,
        SEARCH_TAG: parent_run_id,
        "hydra.job.num": str(trial.number),
        "optuna.trial.number": str(trial.number),
        "optuna.trial.state": trial.state.name,
        "hydra.overrides": " ".join(f"{key}={value}" for key, value in trial.params.items()),
    }
    if "success_rate" in outcome.metrics:
        tags[records.COLOUR_TAG] = records.outcome_colour(outcome.metrics["success_rate"])
    failed = outcome.error is not None
    return records.RunRecord(
        job_number=trial.number,
        name=trial_name(trial.number, trial.params),
        tags=tags,
        params={**params, **{key: str(value) for key, value in trial.params.items()}},
        status=records.FAILED if failed else records.FINISHED,
        result_tags=records.error_tags(outcome.error) if failed else {},
        outcome=outcome.metrics,
        start_time=_ms(trial.datetime_start),
        end_time=_ms(trial.datetime_complete),
    )


def log_trials(
    client: MlflowClient,
    experiment_id: str,
    parent_run_id: str,
    params: dict[str, str],
    outcomes: list[TrialOutcome],
) -> dict[int, str]:
    """Write a batch's trials as child runs (`writer.write_all`), each with its `seeds.csv`."""
    run_ids = writer.write_all(
        experiment_id, [trial_record(parent_run_id, params, outcome) for outcome in outcomes]
    )
    for outcome in outcomes:
        if outcome.seeds:
            client.log_text(run_ids[outcome.trial.number], seeds_csv(outcome.seeds), SEEDS_FILE)
    return run_ids


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def seeds_csv(seeds: list[JobResult]) -> str:
    """A trial's seed members, a row each: seed, solved, accuracy, epochs_to_solve, final loss."""
    text = io.StringIO()
    table = csv.writer(text)
    table.writerow(["seed", "solved", "accuracy", "epochs_to_solve", "loss"])
    for result in seeds:
        table.writerow(
            [
                result.values.get("seed", ""),
                int(result.solved),
                result.accuracy,
                result.epochs_to_solve or "",
                result.loss,
            ]
        )
    return text.getvalue()


def finish_study_run(
    client: MlflowClient, run_id: str, study: optuna.Study, settings: Settings, status: str
) -> None:
    """The study's summary on its parent run (every trial, the best, figures), then its end."""
    trials = study.get_trials(deepcopy=False)
    client.log_text(run_id, study.trials_dataframe().to_csv(index=False), TRIALS_FILE)
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    counts = {state.name: sum(trial.state == state for trial in trials) for state in TrialState}
    for state, count in counts.items():
        if count:
            client.log_metric(run_id, f"trials_{state.lower()}", count)
    best = study.best_trials if complete else []
    if len(settings.objective) == 1 and best:
        (trial,) = best[:1]
        client.log_metric(run_id, f"best_{settings.objective[0]}", trial.values[0])
        client.set_tag(run_id, "optuna.best_trial", str(trial.number))
        for key, value in trial.params.items():
            client.set_tag(run_id, f"optuna.best.{key}", str(value))
    elif best:
        client.set_tag(run_id, "optuna.pareto_trials", ", ".join(str(t.number) for t in best))
    client.set_tag(run_id, "mlflow.note.content", description(study, settings, best, counts))
    if len(complete) >= 2:
        for name, figure in figures(study, settings).items():
            client.log_figure(run_id, figure, name, save_kwargs=FIGURE_PNG)
            plt.close(figure)
    client.set_terminated(run_id, status)


def description(
    study: optuna.Study, settings: Settings, best: list[FrozenTrial], counts: dict[str, int]
) -> str:
    """The parent run's Markdown: the study, its trials by state, and its best trial(s)."""
    states = ", ".join(f"{count} {state}" for state, count in counts.items() if count)
    lines = [
        f"**Optuna study** `{redact(study.study_name)}`: {settings.sampler} sampler, "
        f"{' and '.join(f'{name} ({direction})' for name, direction in zip(settings.objective, settings.directions, strict=True))}; "  # noqa: E501
        f"trials: {states}.",
        "",
    ]
    for trial in best[:10]:
        values = ", ".join(
            f"{name} {value:g}"
            for name, value in zip(settings.objective, trial.values, strict=True)
        )
        lines.append(f"- best: {trial_name(trial.number, trial.params)}: {values}")
    lines += ["", f"Every trial: `{TRIALS_FILE}`; each trial's seeds: its `{SEEDS_FILE}`."]
    return "\n".join(lines)


def figures(study: optuna.Study, settings: Settings) -> dict[str, plt.Figure]:
    """Optuna's own matplotlib figures of the study, by artifact name."""
    found: dict[str, plt.Figure] = {}
    single = len(settings.objective) == 1
    target = None if single else (lambda trial: trial.values[0])
    target_name = settings.objective[0]
    keys = list(study.best_trials[0].params) if study.best_trials else []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        found["optimization_history.png"] = _figure_of(
            optuna_figures.plot_optimization_history(study, target=target, target_name=target_name)
        )
        if len(keys) >= 1 and _varied(study, keys):
            found["param_importances.png"] = _figure_of(
                optuna_figures.plot_param_importances(study, target=target, target_name=target_name)
            )
        if len(keys) == 2:
            found["contour.png"] = _figure_of(
                optuna_figures.plot_contour(study, target=target, target_name=target_name)
            )
        found["slice.png"] = _figure_of(
            optuna_figures.plot_slice(study, target=target, target_name=target_name)
        )
        if not single:
            found["pareto_front.png"] = _figure_of(
                optuna_figures.plot_pareto_front(study, target_names=settings.objective)
            )
    return found


def _varied(study: optuna.Study, keys: list[str]) -> bool:
    """Whether the complete trials' values and objective vary: importances need both."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    objective = {trial.values[0] for trial in complete}
    return len(objective) > 1 and all(
        len({trial.params.get(key) for trial in complete}) > 1 for key in keys
    )


def _figure_of(axes: object) -> plt.Figure:
    """The figure of Optuna's axes, a log axis labelled at its decades only: its minor labels
    (`4x10^-1`, `6x10^-1`) overlap one another on a range of a decade or two."""
    figure = np.ravel(axes)[0].figure
    for each in figure.axes:
        for axis in (each.xaxis, each.yaxis):
            if axis.get_scale() == "log":
                axis.set_minor_formatter(NullFormatter())
    return figure


# Cropped to what is drawn: Optuna's long parameter names run past the figure's left edge.
FIGURE_PNG = {"bbox_inches": "tight"}


KILLED = RunStatus.to_string(RunStatus.KILLED)


class StudyRun:
    """The study's parent run, and what every trial's child shares (the fixed config's params)."""

    def __init__(
        self,
        client: MlflowClient,
        experiment_id: str,
        run_id: str,
        params: dict[str, str],
        timings: Timings,
    ):
        self.client = client
        self.experiment_id = experiment_id
        self.run_id = run_id
        self.params = params
        self.timings = timings

    def log(self, outcomes: list[TrialOutcome]) -> None:
        """The told trials' child runs, written at once."""
        with self.timings.timed("mlflow"):
            log_trials(self.client, self.experiment_id, self.run_id, self.params, outcomes)


def seed_result(seed: int, loss: float, outcome: dict[str, float], seed_key: str) -> JobResult:
    """A trial's seed member as a summary row, scored as a single run of it is."""
    return JobResult(
        number=seed,
        name=f"{seed_key}={seed}",
        values={"seed": str(seed)},
        loss=loss,
        accuracy=outcome["accuracy"],
        epochs_to_solve=int(outcome["epochs_to_solve"]) if "epochs_to_solve" in outcome else None,
        status="FINISHED",
        run_id="",
    )
