"""What MLflow shows: experiment kind, run names, params, tags, sweep metrics and links."""

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from gatelab import tracking
from gatelab.config import ConfigError, validate
from gatelab.sweep import (
    JobResult,
    description,
    fixed_overrides,
    planned_jobs,
    summary_row,
    sweep_metrics,
    swept_values,
)


def test_params_are_the_experiments_knobs_with_lists_as_typed(compose_config):
    params = tracking.config_params(compose_config("model.hidden_units=[3,2]"))
    assert params["model.hidden_units"] == "[3,2]"
    assert params["optimizer.learning_rate"] == 0.1
    assert params["seed"] == 126
    left_out = [
        key
        for key in params
        if key.endswith("_target_")
        or key.startswith("tracking.")
        or key in ("trainer.print_every", "trainer.jit_compile", "tags")
    ]
    assert left_out == []
    assert "trainer.epochs" in params and "dataset.gate" in params


def test_a_sweep_child_is_named_by_its_swept_values_with_short_keys():
    overrides = ["model=mlp", "seed=3", "optimizer.learning_rate=0.5", "trainer.epochs=300"]
    values = swept_values(overrides, ["seed", "optimizer.learning_rate"])
    assert values == {"seed": "3", "optimizer.learning_rate": "0.5"}
    assert tracking.child_run_name(values) == "seed=3 lr=0.5"
    assert tracking.child_run_name({"model": "mlp", "trainer.epochs": "30"}) == (
        "model=mlp epochs=30"
    )
    # Two keys ending alike keep their full names rather than look the same.
    assert tracking.child_run_name({"model.activation": "relu", "other.activation": "tanh"}) == (
        "model.activation=relu other.activation=tanh"
    )


def test_a_sweep_parent_is_named_by_what_it_sweeps_then_what_it_fixes():
    overrides = ["model=mlp", "seed=range(5)", "optimizer.learning_rate=0.1,0.5,2.0"]
    assert planned_jobs(overrides) == 15
    assert fixed_overrides(overrides) == ["model=mlp"]
    name = tracking.sweep_run_name(["seed", "optimizer.learning_rate"], ["model=mlp"], 15)
    assert name == "sweep seed x lr (15 jobs) model=mlp"


def test_config_tags_become_mlflow_tags_and_bad_ones_are_refused(compose_config):
    assert tracking.user_tags(["baseline", "team:ml", "note: a b"]) == {
        "baseline": "true",
        "team": "ml",
        "note": "a b",
    }
    with pytest.raises(ConfigError, match=r"^tags=\['ok', 'bad@tag'\] is not allowed: names of"):
        validate(compose_config("tags=[ok,'bad@tag']"))


def test_the_experiment_opens_in_the_model_training_view(tracking_uri):
    experiment_id = tracking.configure(tracking_uri, "fresh")
    client = MlflowClient(tracking_uri)
    assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == (
        "custom_model_development"
    )
    # A kind the user chose stays; one the UI only guessed is replaced.
    client.set_experiment_tag(experiment_id, "mlflow.experimentKind", "genai_development")
    tracking.configure(tracking_uri, "fresh")
    assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == (
        "genai_development"
    )
    client.set_experiment_tag(experiment_id, "mlflow.experimentKind", "genai_development_inferred")
    tracking.configure(tracking_uri, "fresh")
    assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == (
        "custom_model_development"
    )


def test_runs_go_to_the_configured_experiment_and_a_deleted_one_is_refused(tracking_uri):
    experiment_id = tracking.configure(tracking_uri, "mine")
    with mlflow.start_run() as run:
        pass
    assert run.info.experiment_id == experiment_id
    MlflowClient(tracking_uri).delete_experiment(experiment_id)
    with pytest.raises(ConfigError, match=r"^tracking.experiment='mine' is deleted; restore it"):
        tracking.configure(tracking_uri, "mine")


def test_a_write_that_lost_a_race_is_tried_once_more_and_only_once():
    attempts = []

    def write(value):
        attempts.append(value)
        if len(attempts) < failures:
            raise mlflow.exceptions.MlflowException("duplicate key value violates a constraint")
        return value

    failures = 2
    assert tracking.retried_on_conflict(write)("tag") == "tag"
    assert attempts == ["tag", "tag"]
    attempts.clear()
    failures = 3
    with pytest.raises(mlflow.exceptions.MlflowException, match="duplicate key"):
        tracking.retried_on_conflict(write)("tag")
    assert attempts == ["tag", "tag"]


def test_the_sweep_link_opens_the_model_training_view_filtered_to_the_sweep(tracking_uri):
    mlflow.set_tracking_uri(tracking_uri)
    url = tracking.runs_url("7", tracking.sweep_filter("abc123"))
    assert url == (
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
        "&searchFilter=tags.mlflow.parentRunId%20%3D%20%22abc123%22"
    )
    mlflow.set_tracking_uri("http://mlflow.internal:5000/")
    assert tracking.runs_url("7").startswith("http://mlflow.internal:5000/#/experiments/7/runs?")


def job(number: int, seed: str, rate: str, accuracy: float, epochs: int | None) -> JobResult:
    values = {"seed": seed, "optimizer.learning_rate": rate}
    name = tracking.child_run_name(values)
    return JobResult(number, name, values, 0.1, accuracy, epochs, "FINISHED", f"id{number}")


RESULTS = [
    job(0, "0", "0.1", 1.0, 1400),
    job(1, "1", "0.1", 0.5, None),
    job(2, "2", "0.1", 0.75, None),
    job(3, "0", "2.0", 1.0, 100),
    job(4, "1", "2.0", 1.0, 200),
    job(5, "2", "2.0", 1.0, 300),
]


def test_sweep_metrics_count_the_solved_and_describe_epochs_to_solve_over_them_only():
    metrics = sweep_metrics(RESULTS, ["seed", "optimizer.learning_rate"])
    assert metrics == {
        "jobs": 6,
        "solved_jobs": 4,
        "success_rate": 0.6667,
        # Over 100, 200, 300, 1400 only: the unsolved jobs have no epochs_to_solve.
        "epochs_to_solve_median": 250,
        "epochs_to_solve_p25": 175,
        "epochs_to_solve_p75": 575,
        "success_rate/lr_0.1": 0.3333,
        "success_rate/lr_2.0": 1.0,
    }
    for key in metrics:
        mlflow.utils.validation._validate_metric_name(key)


def test_the_sweep_description_has_the_success_table_the_best_job_and_the_filter():
    metrics = sweep_metrics(RESULTS, ["seed", "optimizer.learning_rate"])
    text = description(RESULTS, ["seed", "optimizer.learning_rate"], metrics, "p1", "cmd", "url")
    assert "| 0.1 | 1/3 | 0.33 | 1400 |" in text
    assert "| 2.0 | 3/3 | 1.00 | 200 |" in text
    assert "Best job: `seed=0 lr=2.0`, solved at epoch 100." in text
    assert 'tags.mlflow.parentRunId = "p1"' in text


def test_a_summary_row_puts_results_before_names_and_ids():
    row = summary_row(RESULTS[0], ["seed", "optimizer.learning_rate"])
    assert list(row) == [
        "job",
        "seed",
        "optimizer.learning_rate",
        "solved",
        "accuracy",
        "loss",
        "epochs_to_solve",
        "status",
        "run_name",
        "overrides",
        "run_id",
    ]
    assert (row["solved"], row["epochs_to_solve"]) == (1, 1400)
    assert summary_row(RESULTS[1], [])["epochs_to_solve"] == ""
    assert np.isclose(float(row["loss"]), 0.1)
