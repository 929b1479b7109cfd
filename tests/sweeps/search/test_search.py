"""`hydra/sweeper=search`: an Optuna study whose trials are each scored over the same seeds.

Small studies (a few trials, 10 seeds, 300 epochs) through `python src/train.py -m`, as a user
runs them; the study is read back from its Optuna storage and from MLflow.
"""

import csv
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from gatelab.views.colours import sequence_colour
from tests.helpers import (
    QUICK,
    all_runs,
    postgres_database,
    run_train,
    run_trains_together,
    runs_of,
    start_train,
)

pytestmark = pytest.mark.slow

SEEDS = "seed=range(10)"
SPACE = [
    "optimizer.learning_rate=tag(log, interval(0.05, 5))",
    "optimizer.momentum=interval(0, 0.9)",
]
SEARCH = ["-m", "hydra/sweeper=search", "model=mlp", "dataset=xor", *QUICK, SEEDS, *SPACE]
SMALL = ["hydra.sweeper.n_trials=6", "hydra.sweeper.batch_size=3", "hydra.sweeper.sampler_seed=0"]


def study_in(workdir: Path, storage: str | None = None) -> optuna.Study:
    """The one study of the storage (by default the search's `optuna.db` in `workdir`)."""
    storage = storage or f"sqlite:///{workdir / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def trial_runs(client: MlflowClient) -> list:
    return [run for run in all_runs(client) if "optuna.trial.number" in run.data.tags]


def seeds_of(client: MlflowClient, run_id: str) -> dict[int, int]:
    """A trial's `seeds.csv`: solved (0 or 1) by seed."""
    path = client.download_artifacts(run_id, "seeds.csv")
    with open(path) as file:
        return {int(row["seed"]): int(row["solved"]) for row in csv.DictReader(file)}


@pytest.mark.usefixtures("tracking_uri")
def test_a_study_is_a_parent_run_with_a_child_per_trial_scored_over_every_seed(tmp_path):
    result = run_train(tmp_path, *SEARCH, *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]

    study = study_in(tmp_path)
    assert [trial.state for trial in study.trials] == [TrialState.COMPLETE] * 6
    client, parents, _ = runs_of(tmp_path)
    (parent,) = parents
    assert parent.info.status == "FINISHED"
    assert parent.data.params["sampler"] == "tpe"
    assert parent.data.params["direction"] == "maximize"
    assert parent.data.params["search.optimizer.momentum"] == "interval(0, 0.9)"
    assert parent.data.tags["optuna.study_name"] == study.study_name
    assert parent.data.tags["optuna.best_trial"] == str(study.best_trial.number)
    assert parent.data.metrics["best_success_rate"] == study.best_value
    assert "Optuna study" in parent.data.tags["mlflow.note.content"]
    artifacts = {item.path for item in client.list_artifacts(parent.info.run_id)}
    assert {"optimization_history.png", "param_importances.png", "contour.png"} <= artifacts
    trials_csv = client.download_artifacts(parent.info.run_id, "trials.csv")
    assert len(Path(trials_csv).read_text().splitlines()) == 1 + 6

    children = trial_runs(client)
    assert len(children) == 6
    # Who ran it and from where, as `mlflow.start_run` tags a job's run: the UI's User, Source.
    for run in [parent, *children]:
        assert run.data.tags["mlflow.source.name"].endswith("train.py")
        assert run.info.user_id == run.data.tags["mlflow.user"] != "unknown"
    for run in children:
        trial = study.trials[int(run.data.tags["optuna.trial.number"])]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["optuna.trial.state"] == "COMPLETE"
        assert re.fullmatch(rf"lr=\S+ momentum=\S+ \(trial {trial.number}\)", run.info.run_name)
        # Each trial its own colour in MLflow's charts, early trials darkest.
        assert run.data.tags["mlflow.runColor"] == sequence_colour(trial.number, 6)
        assert run.data.metrics["success_rate"] == trial.value
        assert float(run.data.params["optimizer.momentum"]) == trial.params["optimizer.momentum"]
        assert {"epochs_to_solve_median", "loss_median"} & set(run.data.metrics)
        solved = seeds_of(client, run.info.run_id)
        assert sorted(solved) == list(range(10))
        assert sum(solved.values()) / 10 == trial.value


def test_the_best_trial_is_reproduced_exactly_by_a_vectorized_grid_of_its_values(tmp_path):
    search_dir, grid_dir = tmp_path / "search", tmp_path / "grid"
    search_dir.mkdir()
    grid_dir.mkdir()
    result = run_train(search_dir, *SEARCH, *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    study = study_in(search_dir)
    # A trial that solved some seeds and not others: the comparison tells seeds apart.
    scored = [trial for trial in study.trials if 0 < trial.value < 1] or [study.best_trial]
    best = max(scored, key=lambda trial: trial.value)
    client, _, _ = runs_of(search_dir)
    (best_run,) = [
        run
        for run in trial_runs(client)
        if run.data.tags["optuna.trial.number"] == str(best.number)
    ]

    values = [f"{key}={value!r}" for key, value in best.params.items()]
    grid = ["-m", "hydra/sweeper=vectorized", "model=mlp", "dataset=xor", *QUICK, SEEDS, *values]
    result = run_train(grid_dir, *grid)
    assert result.returncode == 0, result.stderr[-3000:]
    _, _, jobs = runs_of(grid_dir)
    assert len(jobs) == 10
    solved = {int(job.data.params["seed"]): int(job.data.metrics["solved"]) for job in jobs}
    assert solved == seeds_of(client, best_run.info.run_id)
    assert sum(solved.values()) / 10 == best.value


def test_the_settings_show_in_cfg_hydra(tmp_path):
    result = run_train(tmp_path, "hydra/sweeper=search", "--cfg", "hydra")
    assert result.returncode == 0, result.stderr
    for setting in (
        "n_trials: 20",
        "batch_size: 20",
        "sampler: tpe",
        "direction: null",
        "storage: null",
        "study_name: null",
        "max_failure_rate: 0.5",
        "objective: success_rate",
    ):
        assert f"    {setting}\n" in result.stdout


def test_a_bad_setting_is_one_line_and_exit_2_before_anything_trains(tmp_path):
    # Each setting's message: tests/sweeps/search/test_study.py.
    result = run_train(
        tmp_path, "-m", "hydra/sweeper=search", SEEDS, *SPACE, "hydra.sweeper.n_trials=0"
    )
    assert result.returncode == 2, result.stderr[-3000:]
    (error,) = result.stderr.strip().splitlines()
    assert error.startswith("error: hydra.sweeper.n_trials=0: a study runs at least 1 trial")
    assert not (tmp_path / "optuna.db").exists()
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.usefixtures("tracking_uri")
def test_the_same_command_resumes_its_study_to_n_trials_in_total(tmp_path):
    first = run_train(tmp_path, *SEARCH, "hydra.sweeper.n_trials=3", "hydra.sweeper.batch_size=2")
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(study_in(tmp_path).trials) == 3
    again = run_train(tmp_path, *SEARCH, "hydra.sweeper.n_trials=5", "hydra.sweeper.batch_size=2")
    assert again.returncode == 0, again.stderr[-3000:]
    done = run_train(tmp_path, *SEARCH, "hydra.sweeper.n_trials=5", "hydra.sweeper.batch_size=2")
    assert done.returncode == 0, done.stderr[-3000:]

    study = study_in(tmp_path)
    assert [trial.number for trial in study.trials] == [0, 1, 2, 3, 4]
    assert all(trial.state == TrialState.COMPLETE for trial in study.trials)
    client, parents, _ = runs_of(tmp_path)
    assert len(parents) == 3
    numbers = sorted(int(run.data.tags["optuna.trial.number"]) for run in trial_runs(client))
    assert numbers == [0, 1, 2, 3, 4]


# Batches of 4 trials x 300 seeds: a stop while the second trains.
STOPPED = [*SEARCH[:-3], "seed=range(300)", *SPACE, "hydra.sweeper.batch_size=4"]


@contextmanager
def second_batch_training(workdir: Path) -> Iterator[tuple[subprocess.Popen, list[str]]]:
    """A study of 40 `STOPPED` trials started in `workdir`, once its console says that its
    second batch trains (the event a stop waits on); its console so far. Killed on leaving."""
    process = start_train(workdir, *STOPPED, "hydra.sweeper.n_trials=40", merge_output=True)
    try:
        console = []
        for line in process.stdout:
            console.append(line)
            if "training trials 4, 5, 6, 7 x 300 seeds" in line:
                break
        else:
            pytest.fail("the second batch never trained:\n" + "".join(console)[-3000:])
        yield process, console
    finally:
        process.kill()
        process.wait()


@pytest.mark.usefixtures("tracking_uri")
def test_sigterm_keeps_finished_trials_marks_the_running_ones_and_the_study_resumes(tmp_path):
    with second_batch_training(tmp_path) as (process, console):
        process.send_signal(signal.SIGTERM)
        console.append(process.communicate(timeout=120)[0])
    assert process.returncode == 128 + signal.SIGTERM, "".join(console)[-3000:]

    trials = study_in(tmp_path).get_trials(deepcopy=False)
    complete = [trial.number for trial in trials if trial.state == TrialState.COMPLETE]
    stopped = [trial for trial in trials if trial.state == TrialState.FAIL]
    assert complete == [0, 1, 2, 3], "".join(console)[-3000:]
    assert [trial.number for trial in stopped] == [4, 5, 6, 7]
    assert {trial.user_attrs["failure_reason"] for trial in stopped} == {"stopped"}
    assert len(trials) == 8
    client, (parent,), _ = runs_of(tmp_path)
    assert parent.info.status == "KILLED"

    # `n_trials` counts the four complete trials, not the stopped ones: one more is asked.
    result = run_train(tmp_path, *STOPPED, f"hydra.sweeper.n_trials={len(complete) + 1}")
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = study_in(tmp_path).get_trials(deepcopy=False)
    assert len(resumed) == len(trials) + 1
    assert resumed[-1].state == TrialState.COMPLETE


@pytest.mark.usefixtures("tracking_uri")
def test_trials_a_killed_process_left_running_are_told_fail_when_the_study_resumes(tmp_path):
    with second_batch_training(tmp_path) as (process, console):
        process.kill()  # SIGKILL: the process can tell nothing
        process.wait(timeout=60)
    trials = study_in(tmp_path).get_trials(deepcopy=False)
    running = [trial.number for trial in trials if trial.state == TrialState.RUNNING]
    assert running == [4, 5, 6, 7], "".join(console)[-3000:]
    _, (killed,), _ = runs_of(tmp_path)
    assert killed.info.status == "RUNNING"

    # Four complete trials of six: the four left by the dead process are not counted.
    result = run_train(tmp_path, *STOPPED, "hydra.sweeper.n_trials=6")
    assert result.returncode == 0, result.stderr[-3000:]
    line = "trial(s) 4, 5, 6, 7 were left RUNNING by a process that died: told FAIL"
    assert line in result.stdout + result.stderr
    resumed = study_in(tmp_path).get_trials(deepcopy=False)
    assert [trial.state for trial in resumed] == (
        [TrialState.COMPLETE] * 4 + [TrialState.FAIL] * 4 + [TrialState.COMPLETE] * 2
    )
    assert all("died" in trial.user_attrs["failure_reason"] for trial in resumed[4:8])
    client, parents, _ = runs_of(tmp_path)
    statuses = {run.info.run_id: run.info.status for run in parents}
    assert statuses.pop(killed.info.run_id) == "KILLED"
    assert list(statuses.values()) == ["FINISHED"]


@pytest.mark.usefixtures("tracking_uri")
def test_a_trial_of_bad_values_fails_alone_and_too_many_failures_stop_the_study(tmp_path):
    bad_range = ["optimizer.learning_rate=interval(-1, 1)", "hydra.sweeper.sampler=random"]
    result = run_train(
        tmp_path,
        *SEARCH[:-2],
        *bad_range,
        *SMALL,
        "hydra.sweeper.max_failure_rate=1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = study_in(tmp_path)
    failed = [trial for trial in study.trials if trial.state == TrialState.FAIL]
    complete = [trial for trial in study.trials if trial.state == TrialState.COMPLETE]
    assert failed and complete
    for trial in failed:
        assert trial.params["optimizer.learning_rate"] <= 0
        assert "optimizer.learning_rate=" in trial.user_attrs["failure_reason"]
    client, _, _ = runs_of(tmp_path)
    failed_runs = [run for run in trial_runs(client) if run.info.status == "FAILED"]
    assert len(failed_runs) == len(failed)
    assert all("greater than 0" in run.data.tags["error"] for run in failed_runs)

    stopped_dir = tmp_path / "stopped"
    stopped_dir.mkdir()
    all_bad = ["optimizer.learning_rate=interval(-5, -1)", "hydra.sweeper.max_failure_rate=0.5"]
    result = run_train(stopped_dir, *SEARCH[:-2], *all_bad, *SMALL)
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert "hydra.sweeper.max_failure_rate=0.5: 3 of 3 trials failed" in line
    assert len(study_in(stopped_dir).trials) == 3


@pytest.mark.usefixtures("tracking_uri")
def test_a_config_the_population_cannot_train_runs_a_job_per_trial_through_joblib(tmp_path):
    command = [
        "-m",
        "hydra/sweeper=search",
        "optimizer=adam",
        "hydra/launcher=joblib",
        *QUICK,
        "optimizer.learning_rate=tag(log, interval(0.01, 0.5))",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.batch_size=3",
        "hydra.sweeper.objective=loss",
    ]
    result = run_train(tmp_path, *command)
    assert result.returncode == 0, result.stderr[-3000:]
    # The batch's three trials in one launch: joblib's workers run them side by side.
    assert "is launching 3 jobs" in result.stdout + result.stderr
    study = study_in(tmp_path)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert [trial.state for trial in study.trials] == [TrialState.COMPLETE] * 3
    client, (parent,), jobs = runs_of(tmp_path)
    trials = trial_runs(client)
    jobs = [job for job in jobs if job not in trials and "optuna.trial.number" not in job.data.tags]
    assert len(trials) == 3 and len(jobs) == 3
    loss_by_rate = {job.data.params["optimizer.learning_rate"]: job for job in jobs}
    for trial in study.trials:
        job = loss_by_rate[str(trial.params["optimizer.learning_rate"])]
        assert job.data.tags["hydra.choices.optimizer"] == "adam"
        assert trial.value == pytest.approx(job.data.metrics["loss"], rel=1e-6)


@pytest.mark.usefixtures("tracking_uri")
def test_two_processes_share_a_study_on_postgresql_with_no_trial_twice(tmp_path):
    with postgres_database() as storage:
        shared = [
            *SEARCH,
            f"hydra.sweeper.storage={storage}",
            "hydra.sweeper.study_name=shared",
            "hydra.sweeper.n_trials=8",
            "hydra.sweeper.batch_size=2",
        ]
        tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
        results = run_trains_together(tmp_path, shared, shared, tracking_uri=tracking)
        for result in results:
            assert result.returncode == 0, result.stderr[-3000:]
        study = optuna.load_study(study_name="shared", storage=storage)
        trials = study.get_trials(deepcopy=False)
    counted = [trial for trial in trials if not trial.user_attrs.get("beyond_n_trials")]
    assert len(counted) == 8
    assert all(trial.state == TrialState.COMPLETE for trial in counted)
    numbers = [trial.number for trial in trials]
    assert len(numbers) == len(set(numbers))
    client, parents, _ = runs_of(tmp_path)
    assert len(parents) == 2
    children = trial_runs(client)
    assert sorted(int(run.data.tags["optuna.trial.number"]) for run in children) == sorted(
        trial.number for trial in counted
    )
    # Both processes trained some of the trials.
    assert {run.data.tags["mlflow.parentRunId"] for run in children} == {
        parent.info.run_id for parent in parents
    }


@pytest.mark.usefixtures("tracking_uri")
def test_two_objectives_make_a_pareto_front(tmp_path):
    objectives = "hydra.sweeper.objective=[success_rate,epochs_to_solve_median]"
    result = run_train(tmp_path, *SEARCH, *SMALL, objectives)
    assert result.returncode == 0, result.stderr[-3000:]
    study = study_in(tmp_path)
    assert [direction.name for direction in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    client, (parent,), _ = runs_of(tmp_path)
    assert "pareto_front.png" in {item.path for item in client.list_artifacts(parent.info.run_id)}
    pareto = parent.data.tags["optuna.pareto_trials"].split(", ")
    assert sorted(pareto) == sorted(str(trial.number) for trial in study.best_trials)
