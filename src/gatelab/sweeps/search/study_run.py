"""A study's parent run: the search's `SweepRun`, what its trials share, and its summary (every
trial, the best, Optuna's figures) with the answer said last on the console."""

import logging
import math
from datetime import datetime

import optuna
from optuna.trial import FrozenTrial, TrialState

from gatelab.redaction import redact
from gatelab.sweeps.search.records import (
    SEARCH_TAG,
    SEEDS_FILE,
    TRIALS_FILE,
    TrialOutcome,
    seed_interval,
    seeds_csv,
    trial_line,
    trial_name,
)
from gatelab.sweeps.search.study import Settings
from gatelab.sweeps.search.trials import no_best_line, scored_best
from gatelab.sweeps.sweep_run import SweepRun
from gatelab.sweeps.sweeper import Timings
from gatelab.tracking import records, store
from gatelab.tracking.children import child_store
from gatelab.views.colours import sequence_colour
from gatelab.views.study_figures import FIGURE_PNG, close, study_figures

log = logging.getLogger(__name__)


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
        for outcome in outcomes:
            if outcome.error is None:
                trial = outcome.trial
                log.info("%s", trial_line(trial.number, trial.params, outcome.metrics))

    def summarise(self, interrupted: bool, error: BaseException | None) -> tuple[str, str]:
        with self.timings.timed("mlflow"):
            best = log_study(self)
        if error is not None and not interrupted:
            self.tag_error(error)
        status = records.KILLED if interrupted else records.FINISHED
        settings = self.settings
        compared = runner_up_line(self.study, settings, best)
        if compared:
            log.info("%s", compared)
        answer = best_line(best, settings) if best else no_best_line(self.study, settings.objective)
        return (records.FAILED if error and not interrupted else status), answer


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
        figures = study_figures(study, settings.objective, success_intervals(complete, settings))
        for name, figure in figures.items():
            client.log_figure(run_id, figure, name, save_kwargs=FIGURE_PNG)
            close(figure)
    return best


def success_intervals(
    trials: list[FrozenTrial], settings: Settings
) -> dict[int, tuple[float, float]] | None:
    """Each trial's 95% interval of its success rate by trial number, for the figures; None
    unless the success rate is the (first) objective they plot."""
    if settings.objective[0] != "success_rate":
        return None
    intervals = {trial.number: seed_interval(trial.user_attrs) for trial in trials}
    return {number: (found.low, found.high) for number, found in intervals.items() if found}


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
        shown.append(f"{trial_name(trial.number, trial.params)}: {values}{_seeds(trial)}")
    return f"best {'; '.join(shown)}"


def _seeds(trial: FrozenTrial) -> str:
    """` (84/100 seeds solved, 95% CI 0.76-0.90)`: what a trial's score is made of."""
    seeds, interval = trial.user_attrs, seed_interval(trial.user_attrs)
    if interval is None:
        return ""
    return f" ({seeds['solved_jobs']:g}/{seeds['jobs']:g} seeds solved, 95% CI {interval.text()})"


def runner_up(
    study: optuna.Study, settings: Settings, best: list[FrozenTrial]
) -> FrozenTrial | None:
    """The scored trial ranked next after the best (one tying with it if any); None for two
    objectives (a Pareto front has no runner-up) or a single scored trial."""
    if len(settings.objective) != 1 or not best:
        return None
    others = [
        trial
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if trial.number != best[0].number and math.isfinite(trial.values[0])
    ]
    if not others:
        return None
    ranked = max if settings.directions[0] == "maximize" else min
    return ranked(others, key=lambda trial: trial.values[0])


def runner_up_line(study: optuna.Study, settings: Settings, best: list[FrozenTrial]) -> str:
    """The best trial beside the runner-up, both success rates with their 95% intervals, and
    whether those overlap: `best lr=1.44 (trial 7): success_rate 0.84 (95% CI 0.76-0.90),
    runner-up lr=0.9 (trial 3): 0.80 (0.71-0.87): the intervals overlap, so the two are not told
    apart at 100 seeds`. Empty unless the study maximises or minimises `success_rate` alone."""
    if settings.objective != ["success_rate"] or not best:
        return ""
    first, second = best[0], runner_up(study, settings, best)
    first_interval = seed_interval(first.user_attrs)
    if first_interval is None:
        return ""
    line = (
        f"best {trial_name(first.number, first.params)}: success_rate {first.values[0]:.4g} "
        f"(95% CI {first_interval.text()})"
    )
    second_interval = seed_interval(second.user_attrs) if second else None
    if second is None or second_interval is None:
        return f"{line}; no runner-up: no other trial was scored"
    seeds = sorted({int(first.user_attrs["jobs"]), int(second.user_attrs["jobs"])})
    at = f"at {' and '.join(map(str, seeds))} seeds"
    verdict = (
        f"the intervals overlap, so the two are not told apart {at}"
        if first_interval.overlaps(second_interval)
        else f"the intervals do not overlap, so the best is told apart from the runner-up {at}"
    )
    return (
        f"{line}, runner-up {trial_name(second.number, second.params)}: "
        f"{second.values[0]:.4g} ({second_interval.text()}): {verdict}"
    )


def description(
    study: optuna.Study, settings: Settings, best: list[FrozenTrial], counts: dict[str, int]
) -> str:
    """The parent run's Markdown: the study, its trials by state, its best trial(s) and, for
    `success_rate`, the best beside the runner-up with their intervals."""
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
        lines.append(f"- best: {trial_name(trial.number, trial.params)}: {values}{_seeds(trial)}")
    compared = runner_up_line(study, settings, best)
    if compared:
        lines += [
            "",
            f"{compared[0].upper()}{compared[1:]}. (95% CI: Wilson's interval of the "
            "success rate from the solved and total seeds.)",
        ]
    lines += ["", f"Every trial: `{TRIALS_FILE}`; each trial's seeds: its `{SEEDS_FILE}`."]
    return "\n".join(lines)


def trial_record(study_run: StudyRun, outcome: TrialOutcome) -> records.RunRecord:
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
    # Its own colour, early trials darkest: MLflow's bars are told apart by colour alone.
    tags[records.COLOUR_TAG] = sequence_colour(trial.number, study_run.settings.n_trials)
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


def log_trials(study_run: StudyRun, outcomes: list[TrialOutcome]) -> dict[int, str]:
    """Write a batch's trials as child runs (through the store's seam: in bulk on an SQL
    store), each with its `seeds.csv`."""
    run_ids = child_store(study_run.client.tracking_uri).write_all(
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
