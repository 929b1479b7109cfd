"""A search's runs keep every sweep's promises (`sweeps.sweep_run`): the user's tags, MLflow's
and the host's on the study and each trial, the refusal of a swept `tracking.*`, and the answer
with its run id and link printed last."""

import pytest
from mlflow.tracking import MlflowClient

from gatelab.tracking.store import HOST_TAG, PID_TAG
from tests.helpers import assert_opens_children, run_train

SEARCH = [
    "-m",
    "hydra/sweeper=search",
    "seed=range(3)",
    "optimizer.learning_rate=interval(0.05, 2)",
    "hydra.sweeper.n_trials=3",
    "hydra.sweeper.batch_size=2",
    "trainer.epochs=40",
    "trainer.print_every=0",
]


@pytest.mark.slow
@pytest.mark.usefixtures("tracking_uri")
def test_a_search_tags_its_study_and_trials_as_every_sweep_and_ends_with_its_answer(tmp_path):
    result = run_train(tmp_path, *SEARCH, "tags=[baseline,team:ml]")
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("gatelab")
    runs = client.search_runs([experiment.experiment_id])
    (study,) = [run for run in runs if "optuna.study_name" in run.data.tags]
    trials = [run for run in runs if run is not study]
    assert len(trials) == 3
    for run in [study, *trials]:
        tags = run.data.tags
        assert tags["baseline"] == "true" and tags["team"] == "ml"
        assert tags[HOST_TAG] and tags[PID_TAG].isdigit()
        assert tags["mlflow.user"]
    for trial in trials:
        assert trial.data.tags["mlflow.parentRunId"] == study.info.run_id
        # Its seeds are its `seeds.csv`, not one seed of the config's default.
        assert "seed" not in trial.data.params
        assert float(trial.data.params["optimizer.learning_rate"]) >= 0.05
    # Last: the best trial and its score, the study's run id and the link to its trials.
    last = result.stdout.strip().splitlines()[-1]
    best = study.data.tags["optuna.best_trial"]
    assert f"sweep run {study.info.run_id}; best lr=" in last
    assert f" (trial {best}): success_rate " in last
    assert f"success_rate {study.data.metrics['best_success_rate']:.4g}" in last
    assert last.endswith(f"viewStateShareKey={study.info.run_id}&compareRunsMode=CHART")
    assert_opens_children(client, last, study)


@pytest.mark.slow
def test_a_search_of_a_tracking_setting_is_refused_before_its_study_opens(tmp_path):
    result = run_train(tmp_path, *SEARCH, "tracking.experiment=choice(a, b)")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert "tracking.experiment" in line and "Traceback" not in result.stderr
    assert not (tmp_path / "optuna.db").exists()
    assert not (tmp_path / "mlflow.db").exists()
