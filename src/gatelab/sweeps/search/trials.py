"""A study's trials: who runs each (host, process), which count toward `n_trials`, which are
asked again, and which is best.

`n_trials` counts the trials that finished for their own values, as Optuna's `MaxTrialsCallback`
counts states: a trial stopped, or left RUNNING by a process that died, is asked again.
"""

import math
import re
import socket

import optuna
from optuna.trial import FrozenTrial, TrialState

from gatelab.sweeps.summary import JobResult, group_metrics
from gatelab.tracking.store import HOST_TAG, PID_TAG, process_alive, process_tags

# A failed trial's reason, as a user attribute.
FAILURE_ATTR = "failure_reason"
# The reasons of a trial that failed without values of its own: `n_trials` does not count it, and
# a re-run of the command asks another in its place. Stopped by Ctrl-C or SIGTERM; ended by an
# error of the study's (not of the trial's values); left RUNNING by a process that died.
STOPPED = "stopped"
STUDY_STOPPED = "the study stopped"
DIED = "its process ({pid}) died before the trial was told"
_DIED = re.compile(r"\d+".join(map(re.escape, DIED.split("{pid}"))))
# A trial asked past `n_trials` by sweeps sharing the study: told PRUNED, not trained, not counted.
BEYOND_ATTR = "beyond_n_trials"
# A study's best value that is the worst there is (`objective_values`) ranks no trial: why not.
UNSCORED = {
    "success_rate": "no trial scored",
    "epochs_to_solve_median": "no trial solved a seed",
    "loss": "every trial's loss diverged",
}


def claim(trial: optuna.Trial) -> None:
    """Note on `trial` the host and process that run it (`gatelab.host`, `gatelab.pid`, as a
    run's tags): a trial its process leaves RUNNING when it dies can be told apart."""
    for key, value in process_tags().items():
        trial.set_user_attr(key, value)


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Tell FAIL the study's RUNNING trials whose process, on this host, is gone (`kill -9`, the
    out-of-memory killer): nothing else would end them, as Optuna's heartbeat is for `optimize`.
    Trials of live processes or of other hosts are left alone. Returns their numbers."""
    host, dead = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = str(trial.user_attrs.get(PID_TAG, ""))
        if trial.user_attrs.get(HOST_TAG) == host and pid.isdigit() and not process_alive(int(pid)):
            reason = DIED.format(pid=pid)
            study._storage.set_trial_user_attr(trial._trial_id, FAILURE_ATTR, reason)
            study.tell(trial.number, state=TrialState.FAIL)
            dead.append(trial.number)
    return dead


def interrupted(trial: FrozenTrial) -> bool:
    """Whether `trial` failed without values of its own: stopped, or left by a dead process."""
    reason = str(trial.user_attrs.get(FAILURE_ATTR, ""))
    stopped = reason in (STOPPED, STUDY_STOPPED) or _DIED.fullmatch(reason) is not None
    return trial.state == TrialState.FAIL and stopped


def finished_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that finished for their own values: COMPLETE, or FAIL for a reason of their
    own (a value the config refuses, an error of their own), as Optuna's `MaxTrialsCallback`
    counts; not a trial stopped or left by a dead process, nor one asked beyond `n_trials`."""
    done = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
    return [
        trial
        for trial in trials
        if trial.state in done and not interrupted(trial) and not trial.user_attrs.get(BEYOND_ATTR)
    ]


def counted_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials `n_trials` counts: the finished ones and those running now (in this process or
    one sharing the study), which will finish for their values or be asked again."""
    finished = {trial.number for trial in finished_trials(trials)}
    return [
        trial for trial in trials if trial.number in finished or trial.state == TrialState.RUNNING
    ]


def to_ask(trials: list[FrozenTrial], n_trials: int, batch_size: int) -> int:
    """The next batch's size: what `n_trials` still lacks of the study's counted trials."""
    return max(0, min(batch_size, n_trials - len(counted_trials(trials))))


def within_n_trials(trials: list[FrozenTrial], number: int, n_trials: int) -> bool:
    """Whether trial `number` is one of the study's first `n_trials` counted trials (another
    process may have asked the last ones at the same moment)."""
    earlier = [trial for trial in counted_trials(trials) if trial.number <= number]
    return len(earlier) <= n_trials


def trial_metrics(results: list[JobResult]) -> dict[str, float]:
    """A trial's numbers, `group_metrics` of its seeds, its success rate exact as Optuna is told
    it (`group_metrics` rounds it to 4 decimals for a sweep's table: 22/30 is not 0.7333)."""
    metrics = group_metrics(results)
    if results:
        metrics["success_rate"] = metrics["solved_jobs"] / metrics["jobs"]
    return metrics


def scored_best(study: optuna.Study) -> list[FrozenTrial]:
    """The study's best trial(s) with a score: a value no seed has (no seed solved, so no
    `epochs_to_solve_median`) is the worst there is and ranks no trial best."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    return [trial for trial in study.best_trials if all(map(math.isfinite, trial.values))]


def no_best_line(study: optuna.Study, objective: list[str]) -> str:
    """What the console says instead of a best trial: none finished, or none scored."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return "no trial finished"
    unscored = [
        UNSCORED[name]
        for index, name in enumerate(objective)
        if not any(math.isfinite(trial.values[index]) for trial in complete)
    ]
    return "; ".join(dict.fromkeys(unscored)) or UNSCORED["success_rate"]
