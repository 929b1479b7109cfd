"""A study in MLflow: one parent run per command, one child per trial with its seeds' outcomes.

A trial's child is written through `tracking.writer` as a `RunRecord`, as a job's is; its seed
members are not runs (100 trials x 100 seeds would be 10,000 of them) but one `seeds.csv`. The
parent holds the study's settings, every trial as `trials.csv`, the best trial and Optuna's figures.
"""

import csv
import io
import logging
from dataclasses import dataclass
from datetime import datetime

import optuna
from optuna.trial import FrozenTrial, TrialState

from gatelab.redaction import redact
from gatelab.sweeps.search_space import SearchSpace
from gatelab.sweeps.search_study import Settings, no_best_line, scored_best
from gatelab.sweeps.summary import JobResult
from gatelab.sweeps.sweep_run import SweepRun
from gatelab.sweeps.sweeper import Timings
from gatelab.tracking import records, store, writer
from gatelab.tracking.naming import short_keys
from gatelab.views.study_figures import FIGURE_PNG, close, study_figures

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


def study_params(study_name: str, settings: Settings, space: SearchSpace) -> dict[str, str]:
    """The study's settings, as its parent run's params."""
    return {
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


@dataclass(frozen=True)
class TrialOutcome:
    """A told trial, what its child run shows: its seeds' numbers, or the error it failed with."""

    trial: FrozenTrial
    metrics: dict[str, float]
    seeds: list[JobResult]
    error: BaseException | None = None


def trial_record(study_run: "StudyRun", outcome: TrialOutcome) -> records.RunRecord:
    """A trial's child run: its values as params, the objective metrics, its Optuna state; its
    tags as a job's run has them (`records.record_tags`: the user's, MLflow's, the host's)."""
    trial = outcome.trial
    job = records.Job(
        overrides=[f"{key}={value}" for key, value in trial.params.items()],
        choices=study_run.choices,
        parent_run_id=study_run.run_id,
        number=trial.number,
        swept=study_run.swept,
    )
    tags = {
        **records.record_tags(job, study_run.tags),
        SEARCH_TAG: study_run.run_id,
        "optuna.trial.number": str(trial.number),
        "optuna.trial.state": trial.state.name,
    }
    if "success_rate" in outcome.metrics:
        tags[records.COLOUR_TAG] = records.outcome_colour(outcome.metrics["success_rate"])
    failed = outcome.error is not None
    return records.RunRecord(
        job_number=trial.number,
        name=trial_name(trial.number, trial.params),
        tags=tags,
        params={
            **study_run.params,
            **{key: redact(str(value)) for key, value in trial.params.items()},
        },
        status=records.FAILED if failed else records.FINISHED,
        result_tags=records.error_tags(outcome.error) if failed else {},
        outcome=outcome.metrics,
        start_time=_ms(trial.datetime_start),
        end_time=_ms(trial.datetime_complete),
    )


def log_trials(study_run: "StudyRun", outcomes: list[TrialOutcome]) -> dict[int, str]:
    """Write a batch's trials as child runs (`writer.write_all`), each with its `seeds.csv`."""
    run_ids = writer.write_all(
        study_run.experiment_id, [trial_record(study_run, outcome) for outcome in outcomes]
    )
    for outcome in outcomes:
        if outcome.seeds:
            study_run.client.log_text(
                run_ids[outcome.trial.number], seeds_csv(outcome.seeds), SEEDS_FILE
            )
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


def log_study(study_run: "StudyRun") -> list[FrozenTrial]:
    """The study's summary on its parent run: every trial, counts by state, the best trial(s),
    Optuna's figures; return the best trials."""
    study, settings, client, run_id = (
        study_run.study,
        study_run.settings,
        study_run.client,
        study_run.run_id,
    )
    trials = study.get_trials(deepcopy=False)
    client.log_text(run_id, study.trials_dataframe().to_csv(index=False), TRIALS_FILE)
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    counts = {state.name: sum(trial.state == state for trial in trials) for state in TrialState}
    for state, count in counts.items():
        if count:
            client.log_metric(run_id, f"trials_{state.lower()}", count)
    best = scored_best(study)
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
        for name, figure in study_figures(study, settings.objective).items():
            client.log_figure(run_id, figure, name, save_kwargs=FIGURE_PNG)
            close(figure)
    return best


def best_line(best: list[FrozenTrial], settings: Settings) -> str:
    """The study's answer, said last on the console: its best trial(s) and their scores."""
    if not best:
        return "no trial finished"
    shown = []
    # One objective: the first of the trials that tie for best; two: up to 3 of the front.
    for trial in best[: 1 if len(settings.objective) == 1 else 3]:
        values = ", ".join(
            f"{name} {value:.4g}"
            for name, value in zip(settings.objective, trial.values, strict=True)
        )
        shown.append(f"{trial_name(trial.number, trial.params)}: {values}")
    return f"best {'; '.join(shown)}"


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


class StudyRun(SweepRun):
    """A study's parent run: the sweep's run of a search, its trials as children."""

    what = "this study's trials"

    def start(
        self,
        study: optuna.Study,
        settings: Settings,
        params: dict[str, str],
        choices: dict[str, str],
        timings: Timings,
    ) -> None:
        """What the trials' runs share: the study, the fixed config's params, its options.

        Its runs an earlier process on this host left RUNNING when it died are ended KILLED."""
        self.study, self.settings, self.params = study, settings, params
        self.choices, self.timings = choices, timings
        for run in store.dead_runs(self.client, [self.experiment_id]):
            if run.data.tags.get("optuna.study_name") == redact(study.study_name):
                store.mark_killed(self.client, run)

    def log(self, outcomes: list[TrialOutcome]) -> None:
        """The told trials' child runs, written at once."""
        with self.timings.timed("mlflow"):
            log_trials(self, outcomes)

    def summarise(self, interrupted: bool, error: BaseException | None) -> tuple[str, str]:
        with self.timings.timed("mlflow"):
            best = log_study(self)
        if error is not None and not interrupted:
            self.tag_error(error)
        status = records.KILLED if interrupted else records.FINISHED
        settings = self.settings
        answer = best_line(best, settings) if best else no_best_line(self.study, settings.objective)
        return (records.FAILED if error and not interrupted else status), answer


def seed_result(seed: int, loss: float, outcome: dict[str, float], seed_key: str) -> JobResult:
    """A trial's seed member as a summary row, scored as a single run of it is."""
    return JobResult(
        number=seed,
        name=f"{seed_key}={seed}",
        values={"seed": str(seed)},
        loss=loss,
        accuracy=outcome["accuracy"],
        epochs_to_solve=int(outcome["epochs_to_solve"]) if "epochs_to_solve" in outcome else None,
        status=records.FINISHED,
        run_id="",
    )
