"""What `n_trials` counts: the trials that finished for their own values (COMPLETE, or FAIL for a
reason of their own) and those running now; not a trial stopped or left by a dead process, nor
one asked beyond `n_trials`. What Optuna is told, exactly, and what a study with no score says."""

import math
import subprocess
import sys

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from gatelab.sweeps.search.study import objective_values
from gatelab.sweeps.search.trials import (
    BEYOND_ATTR,
    DIED,
    FAILURE_ATTR,
    STOPPED,
    STUDY_STOPPED,
    claim,
    counted_trials,
    fail_dead_trials,
    finished_trials,
    interrupted,
    no_best_line,
    scored_best,
    to_ask,
    trial_metrics,
    within_n_trials,
)
from gatelab.sweeps.summary import JobResult, group_metrics

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {"optimizer.learning_rate": FloatDistribution(0.01, 5, log=True)}


def failed(reason: str | None) -> optuna.trial.FrozenTrial:
    attrs = {FAILURE_ATTR: reason} if reason is not None else {}
    return create_trial(state=TrialState.FAIL, params={}, distributions={}, user_attrs=attrs)


def complete(value: float = 0.5) -> optuna.trial.FrozenTrial:
    return create_trial(value=value, params={}, distributions={})


def study_of(*trials: optuna.trial.FrozenTrial, direction: str = "maximize") -> optuna.Study:
    """An in-memory study holding `trials`, numbered in order."""
    study = optuna.create_study(direction=direction)
    study.add_trials(list(trials))
    return study


def numbers(trials: list[optuna.trial.FrozenTrial]) -> list[int]:
    return [trial.number for trial in trials]


# A study stopped once (SIGTERM) and killed once (kill -9), with a trial of bad values between.
STOPPED_AND_KILLED = study_of(
    complete(),  # 0
    complete(),  # 1
    failed(STOPPED),  # 2: SIGTERM while it trained
    failed(STUDY_STOPPED),  # 3: an error of the study's, not of its values
    failed(DIED.format(pid=4242)),  # 4: its process was killed
    failed("optimizer.learning_rate=-0.5: must be greater than 0"),  # 5: its own values
    complete(),  # 6
    create_trial(
        state=TrialState.PRUNED, params={}, distributions={}, user_attrs={BEYOND_ATTR: True}
    ),  # 7: asked beyond n_trials by a process sharing the study
).get_trials()


def test_a_trial_stopped_or_left_by_a_dead_process_did_not_finish_for_its_own_values():
    assert numbers(finished_trials(STOPPED_AND_KILLED)) == [0, 1, 5, 6]
    assert [interrupted(trial) for trial in STOPPED_AND_KILLED] == [
        *[False] * 2,
        *[True] * 3,
        *[False] * 3,
    ]
    # A FAIL Optuna told itself (a value it cannot store) carries no reason: its own failure.
    assert not interrupted(failed(None))
    assert not interrupted(failed("its process (4242) died before the trial was told, twice"))


def test_a_rerun_asks_what_n_trials_lacks_of_the_trials_that_finished_for_their_own_values():
    # Six trials were asked for and eight were, but only four finished for their own values.
    assert to_ask(STOPPED_AND_KILLED, n_trials=6, batch_size=4) == 2
    assert to_ask(STOPPED_AND_KILLED, n_trials=6, batch_size=1) == 1
    assert to_ask(STOPPED_AND_KILLED, n_trials=4, batch_size=4) == 0
    assert to_ask(STOPPED_AND_KILLED, n_trials=3, batch_size=4) == 0


def test_a_trial_running_now_is_counted_so_processes_sharing_a_study_ask_no_extra_trial():
    study = study_of(complete(), failed(STOPPED))
    study.ask(fixed_distributions=SPACE)  # trial 2, another process's, training now
    trials = study.get_trials()
    assert numbers(counted_trials(trials)) == [0, 2]
    assert numbers(finished_trials(trials)) == [0]
    assert to_ask(trials, n_trials=3, batch_size=5) == 1
    assert within_n_trials(trials, 2, n_trials=2)
    # A trial asked at the same moment by another process, past the study's n_trials.
    study.ask(fixed_distributions=SPACE)
    assert not within_n_trials(study.get_trials(), 3, n_trials=2)
    assert within_n_trials(study.get_trials(), 3, n_trials=3)


def test_a_trial_whose_process_died_is_told_fail_with_the_dead_process_reason_and_not_counted():
    study = study_of(complete())
    trial = study.ask(fixed_distributions=SPACE)
    claim(trial)
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    trial.set_user_attr("gatelab.pid", ended.stdout.strip())

    assert fail_dead_trials(study) == [1]
    (dead,) = study.get_trials(states=(TrialState.FAIL,))
    assert dead.user_attrs[FAILURE_ATTR] == DIED.format(pid=ended.stdout.strip())
    assert numbers(counted_trials(study.get_trials())) == [0]
    assert to_ask(study.get_trials(), n_trials=2, batch_size=4) == 1


def seeds(solved: int, total: int) -> list[JobResult]:
    """`total` seed results of which the first `solved` solved, in 100 epochs."""
    return [
        JobResult(
            number=seed,
            name=f"seed={seed}",
            values={"seed": str(seed)},
            loss=0.01 if seed < solved else 0.25,
            accuracy=1.0 if seed < solved else 0.5,
            epochs_to_solve=100 if seed < solved else None,
            status="FINISHED",
            run_id="",
        )
        for seed in range(total)
    ]


def test_a_trials_success_rate_is_told_to_optuna_exactly_not_rounded_as_the_summary_shows_it():
    assert group_metrics(seeds(22, 30))["success_rate"] == 0.7333
    metrics = trial_metrics(seeds(22, 30))
    assert metrics["success_rate"] == 22 / 30
    assert objective_values(metrics, ["success_rate"]) == [22 / 30]
    study = optuna.create_study(direction="maximize")
    study.tell(study.ask(), objective_values(metrics, ["success_rate"]))
    assert study.best_value == 22 / 30


def test_a_study_where_no_seed_solved_has_no_best_trial_and_says_no_trial_solved():
    unsolved = objective_values(trial_metrics(seeds(0, 10)), ["epochs_to_solve_median"])
    assert unsolved == [math.inf]
    study = study_of(complete(unsolved[0]), complete(unsolved[0]), direction="minimize")
    assert scored_best(study) == []
    assert no_best_line(study, ["epochs_to_solve_median"]) == "no trial solved a seed"
    # One trial solved: it is the best, the others rank below it.
    solved = objective_values(trial_metrics(seeds(3, 10)), ["epochs_to_solve_median"])
    study.add_trial(complete(solved[0]))
    assert numbers(scored_best(study)) == [2]


@pytest.mark.parametrize(
    ("objective", "directions", "values", "line"),
    [
        (["loss"], ["minimize"], [math.inf], "every trial's loss diverged"),
        (
            ["success_rate", "epochs_to_solve_median"],
            ["maximize", "minimize"],
            [0.0, math.inf],
            "no trial solved a seed",
        ),
    ],
)
def test_a_study_without_a_score_says_why_in_its_objectives_terms(
    objective, directions, values, line
):
    study = optuna.create_study(directions=directions)
    study.add_trial(create_trial(values=values, params={}, distributions={}))
    assert scored_best(study) == []
    assert no_best_line(study, objective) == line


def test_a_study_with_no_complete_trial_says_no_trial_finished():
    study = study_of(failed("optimizer.learning_rate=-1: must be greater than 0"))
    assert scored_best(study) == []
    assert no_best_line(study, ["success_rate"]) == "no trial finished"
