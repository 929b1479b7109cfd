"""How sure a search's answer is: each trial's success rate with its 95% interval (Wilson's, from
its solved and total seeds) as metrics of its run and on the console, and the best trial beside
the runner-up with both intervals, saying whether they overlap."""

import re

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from gatelab.sweeps.intervals import wilson_interval
from gatelab.sweeps.search.records import trial_line
from gatelab.sweeps.search.study import Settings
from gatelab.sweeps.search.study_run import best_line, description, runner_up, runner_up_line
from gatelab.sweeps.search.trials import trial_metrics
from gatelab.sweeps.summary import JobResult
from tests.helpers import run_train

optuna.logging.set_verbosity(optuna.logging.WARNING)

LEARNING_RATE = {"optimizer.learning_rate": FloatDistribution(0.01, 5, log=True)}


def seeds(solved: int, total: int) -> list[JobResult]:
    """`total` seed results of which the first `solved` solved."""
    return [
        JobResult(
            number=seed,
            name=f"seed={seed}",
            values={"seed": str(seed)},
            loss=0.1,
            accuracy=1.0 if seed < solved else 0.5,
            epochs_to_solve=100 if seed < solved else None,
            status="FINISHED",
            run_id="",
        )
        for seed in range(total)
    ]


def scored(learning_rate: float, solved: int, total: int = 100) -> optuna.trial.FrozenTrial:
    """A COMPLETE trial as the sweeper tells it: its success rate, its metrics as user attrs."""
    metrics = trial_metrics(seeds(solved, total))
    return create_trial(
        value=metrics["success_rate"],
        params={"optimizer.learning_rate": learning_rate},
        distributions=LEARNING_RATE,
        user_attrs=metrics,
    )


def study_of(*trials: optuna.trial.FrozenTrial, direction: str = "maximize") -> optuna.Study:
    study = optuna.create_study(direction=direction)
    study.add_trials(list(trials))
    return study


def test_a_trials_metrics_and_console_line_carry_its_interval():
    metrics = trial_metrics(seeds(84, 100))
    assert metrics["success_rate"] == 0.84
    assert (metrics["success_rate_ci_low"], metrics["success_rate_ci_high"]) == (0.7558, 0.899)
    line = trial_line(7, {"optimizer.learning_rate": 1.44}, metrics)
    assert line == "lr=1.44 (trial 7): success_rate 0.84 (95% CI 0.76-0.90), 84/100 seeds solved"
    # A trial of no recorded seed (its jobs' runs all missing) has no interval to show.
    assert trial_line(2, {}, trial_metrics([])) == "trial 2: no seed recorded"


def test_the_best_beside_the_runner_up_says_their_intervals_overlap():
    study = study_of(scored(0.1, 40), scored(0.9, 80), scored(0.02, 10), scored(1.44, 84))
    settings = Settings()
    best = study.best_trials
    assert runner_up(study, settings, best).number == 1
    assert runner_up_line(study, settings, best) == (
        "best lr=1.44 (trial 3): success_rate 0.84 (95% CI 0.76-0.90), runner-up lr=0.9 (trial 1): "
        "0.8 (0.71-0.87): the intervals overlap, so the two are not told apart at 100 seeds"
    )
    # The console's last line keeps its shape, the interval beside the solved seeds.
    assert best_line(best, settings) == (
        "best lr=1.44 (trial 3): success_rate 0.84 (84/100 seeds solved, 95% CI 0.76-0.90)"
    )
    text = description(study, settings, best, {"COMPLETE": 4})
    assert (
        "- best: lr=1.44 (trial 3): success_rate 0.84 (84/100 seeds solved, 95% CI 0.76-0.90)"
        in (text)
    )
    assert (
        "Best lr=1.44 (trial 3): success_rate 0.84 (95% CI 0.76-0.90), runner-up lr=0.9 (trial 1)"
        in (text)
    )


def test_intervals_apart_tell_the_best_from_the_runner_up():
    study = study_of(scored(0.1, 40), scored(1.44, 84, total=100), scored(0.02, 10))
    line = runner_up_line(study, Settings(), study.best_trials)
    assert line.endswith(
        "runner-up lr=0.1 (trial 0): 0.4 (0.31-0.50): the intervals do not overlap, so the best "
        "is told apart from the runner-up at 100 seeds"
    )
    # Trials scored over different seed counts (a fallback trial whose job failed) say both.
    study = study_of(scored(0.1, 39, total=99), scored(1.44, 84))
    assert runner_up_line(study, Settings(), study.best_trials).endswith("at 99 and 100 seeds")


def test_a_minimised_success_rate_ranks_its_runner_up_the_other_way():
    study = study_of(scored(0.1, 40), scored(0.9, 80), scored(0.02, 10), direction="minimize")
    settings = Settings(direction=["minimize"])
    assert study.best_trials[0].number == 2
    assert runner_up(study, settings, study.best_trials).number == 0


def test_no_runner_up_for_one_trial_two_objectives_or_another_objective():
    study = study_of(scored(1.44, 84))
    assert runner_up_line(study, Settings(), study.best_trials) == (
        "best lr=1.44 (trial 0): success_rate 0.84 (95% CI 0.76-0.90); no runner-up: no other "
        "trial was scored"
    )
    study = study_of(scored(1.44, 84), scored(0.9, 80))
    assert runner_up_line(study, Settings(objective=["epochs_to_solve_median"]), []) == ""
    pareto = Settings(objective=["success_rate", "epochs_to_solve_median"])
    assert runner_up_line(study, pareto, study.best_trials) == ""
    assert runner_up(study, pareto, study.best_trials) is None


@pytest.mark.slow
@pytest.mark.usefixtures("tracking_uri")
def test_a_search_logs_each_trials_interval_and_ends_with_the_best_beside_the_runner_up(
    tmp_path,
):
    result = run_train(
        tmp_path,
        "-m",
        "hydra/sweeper=search",
        "seed=range(6)",
        "optimizer.learning_rate=interval(0.05, 2)",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.batch_size=3",
        "hydra.sweeper.sampler_seed=0",
        "trainer.epochs=40",
        "trainer.print_every=0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("gatelab").experiment_id])
    (study,) = [run for run in runs if "optuna.study_name" in run.data.tags]
    trials = [run for run in runs if run is not study]
    assert len(trials) == 3
    output = result.stdout + result.stderr
    for trial in trials:
        metrics = trial.data.metrics
        solved, total = int(metrics["solved_jobs"]), int(metrics["jobs"])
        assert total == 6
        interval = wilson_interval(solved, total)
        assert metrics["success_rate_ci_low"] == pytest.approx(interval.low, abs=5e-5)
        assert metrics["success_rate_ci_high"] == pytest.approx(interval.high, abs=5e-5)
        assert f"{trial.info.run_name}: success_rate {solved / total:.4g} (95% CI " in output
    # Last but one: the best beside the runner-up, and whether their intervals overlap.
    compared, last = result.stdout.strip().splitlines()[-2:]
    (best,) = [
        run
        for run in trials
        if run.data.tags["optuna.trial.number"] == study.data.tags["optuna.best_trial"]
    ]
    assert f"] best {best.info.run_name}: success_rate " in compared
    verdict = (
        r", runner-up .* \(trial \d+\): .*: the intervals (overlap|do not overlap), "
        r"so .* at 6 seeds$"
    )
    assert re.search(verdict, compared)
    top, second = sorted(int(run.data.metrics["solved_jobs"]) for run in trials)[::-1][:2]
    overlap = wilson_interval(top, 6).overlaps(wilson_interval(second, 6))
    assert ("the intervals overlap" in compared) == overlap
    # Last: the run id, the best with its interval, and the link.
    assert f"sweep run {study.info.run_id}; best {best.info.run_name}: " in last
    assert "seeds solved, 95% CI " in last
