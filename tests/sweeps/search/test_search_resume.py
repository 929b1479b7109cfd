"""A search stopped (SIGTERM) or killed (`kill -9`) mid-study, re-run with the same command, ends
with exactly `n_trials` trials that finished for their own values; a study re-run on other seeds
is refused in one line, exit 2, before any run is opened (issue 26 items 2 and 3).

Through `python src/train.py -m hydra/sweeper=search`, as a user runs it; the study is read back
from its Optuna storage, the runs from MLflow's store.
"""

import signal
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers import QUICK, run_train, runs_of, start_train

# Each test's store is made already in tmp_path (fixture tracking_uri): no test here is of its
# creation.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tracking_uri")]

SPACE = [
    "optimizer.learning_rate=tag(log, interval(0.05, 5))",
    "optimizer.momentum=interval(0, 0.9)",
]
SEARCH = ["-m", "hydra/sweeper=search", "model=mlp", "dataset=xor", *QUICK, *SPACE]
# Six trials, four a batch, 300 seeds: a stop while the second batch (trials 4 and 5) trains.
SIX_TRIALS = [
    *SEARCH,
    "seed=range(300)",
    "hydra.sweeper.n_trials=6",
    "hydra.sweeper.batch_size=4",
    "hydra.sweeper.sampler_seed=0",
]


def trials_in(workdir: Path) -> list[optuna.trial.FrozenTrial]:
    """The trials of the one study in `workdir`'s `optuna.db`."""
    storage = f"sqlite:///{workdir / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()


def stopped_while_the_second_batch_trains(workdir: Path, stop: signal.Signals) -> str:
    """Start `SIX_TRIALS` in `workdir`, send `stop` once it says the second batch trains (the
    event, not a time), wait for its end; its console."""
    process = start_train(workdir, *SIX_TRIALS, merge_output=True)
    try:
        console = []
        for line in process.stdout:
            console.append(line)
            if "training trials 4, 5 x 300 seeds" in line:
                break
        else:
            pytest.fail("the second batch never trained:\n" + "".join(console)[-3000:])
        process.send_signal(stop)
        console.append(process.communicate(timeout=120)[0])
    finally:
        process.kill()
        process.wait()
    return "".join(console)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "kill -9"])
def test_a_search_stopped_mid_study_resumes_to_n_trials_that_finished_for_their_own_values(
    tmp_path, stop
):
    console = stopped_while_the_second_batch_trains(tmp_path, stop)
    stopped = trials_in(tmp_path)
    left = TrialState.FAIL if stop == signal.SIGTERM else TrialState.RUNNING
    assert [trial.state for trial in stopped] == [TrialState.COMPLETE] * 4 + [left] * 2, console

    again = run_train(tmp_path, *SIX_TRIALS)
    assert again.returncode == 0, again.stderr[-3000:]
    output = again.stdout + again.stderr
    # Trials 4 and 5 did not finish for their own values: two more are asked in their place.
    assert "4 of 6 trials done" in output
    trials = trials_in(tmp_path)
    assert [trial.state for trial in trials] == (
        [TrialState.COMPLETE] * 4 + [TrialState.FAIL] * 2 + [TrialState.COMPLETE] * 2
    )
    reasons = [trial.user_attrs["failure_reason"] for trial in trials[4:6]]
    if stop == signal.SIGTERM:
        assert reasons == ["stopped", "stopped"]
    else:
        assert all(reason.endswith("died before the trial was told") for reason in reasons)
    _, parents, _ = runs_of(tmp_path)
    assert sorted(run.info.status for run in parents) == ["FINISHED", "KILLED"]

    # The study has its six: the same command once more asks none.
    done = run_train(tmp_path, *SIX_TRIALS)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "6 of 6 trials done" in done.stdout + done.stderr
    assert len(trials_in(tmp_path)) == 8


def test_a_study_rerun_on_other_seeds_is_refused_in_one_line_before_any_run_opens(tmp_path):
    fixed = [
        *SEARCH,
        "hydra.sweeper.study_name=fixed",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.batch_size=2",
    ]
    first = run_train(tmp_path, *fixed, "seed=range(3)")
    assert first.returncode == 0, first.stderr[-3000:]

    again = run_train(tmp_path, *fixed, "seed=range(5)", "hydra.sweeper.n_trials=4")
    assert again.returncode == 2, again.stderr[-3000:]
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1, again.stderr[-3000:]
    assert lines[0] == (
        "error: study 'fixed': its trials were scored with seed=range(0, 3), this command's "
        "with seed=range(0, 5); run it with the study's values, or under another name "
        "(hydra.sweeper.study_name)"
    )
    assert [trial.state for trial in trials_in(tmp_path)] == [TrialState.COMPLETE] * 2
    _, parents, _ = runs_of(tmp_path)
    assert [run.info.status for run in parents] == ["FINISHED"]
