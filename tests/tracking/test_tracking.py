"""What MLflow shows: experiment kind, run names, params, tags, sweep metrics and links."""

import mlflow
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from mlflow.protos.databricks_pb2 import BAD_REQUEST, INTERNAL_ERROR
from mlflow.tracking import MlflowClient

from gatelab.config import validate
from gatelab.errors import ConfigError
from gatelab.tracking.experiment import configure, retried_on_conflict
from gatelab.tracking.links import run_url, runs_url, sweep_filter
from gatelab.tracking.naming import (
    child_run_name,
    config_params,
    fixed_overrides,
    planned_jobs,
    short_keys,
    single_run_name,
    sweep_run_name,
    swept_values,
    user_tags,
)
from gatelab.tracking.records import outcome_colour


def test_params_are_the_experiments_knobs_with_lists_as_typed(compose_config):
    params = config_params(compose_config("model.hidden_units=[3,2]"))
    assert params["model.hidden_units"] == "[3,2]"
    # As MLflow stores every param: as text.
    assert params["optimizer.learning_rate"] == "0.1"
    assert params["seed"] == "126"
    left_out = [
        key
        for key in params
        if key.endswith("_target_")
        or key.startswith("tracking.")
        or key in ("trainer.print_every", "trainer.jit_compile", "tags")
    ]
    assert left_out == []
    assert "trainer.epochs" in params and "dataset.gate" in params
    # What is unset is no param (Compare would list it as None beside what differs).
    assert "model.kernel_initializer.name" in params
    assert "None" not in params.values()


def test_a_sweep_child_is_named_by_its_swept_values_with_short_keys():
    overrides = ["model=mlp", "seed=3", "optimizer.learning_rate=0.5", "trainer.epochs=300"]
    values = swept_values(overrides, ["seed", "optimizer.learning_rate"])
    assert values == {"seed": "3", "optimizer.learning_rate": "0.5"}
    assert child_run_name(values) == "seed=3 lr=0.5"
    assert child_run_name({"model": "mlp", "trainer.epochs": "30"}) == ("model=mlp epochs=30")
    # Two keys ending alike keep their full names rather than look the same.
    assert child_run_name({"model.activation": "relu", "other.activation": "tanh"}) == (
        "model.activation=relu other.activation=tanh"
    )

    # Cached names are not shared: changing one dict leaves the next call's as it was.
    short_keys(["seed", "optimizer.learning_rate"])["seed"] = "changed"
    assert short_keys(["seed", "optimizer.learning_rate"]) == {
        "seed": "seed",
        "optimizer.learning_rate": "lr",
    }


@pytest.mark.parametrize(
    "override",
    ["seed=0", "seed=42", "seed=-12", "seed=99999999999999999999", "a.b_c.d1=7", "true=1"]
    + ["seed=05", "seed=-0", "seed=+5", "seed=1_000", "+seed=3", "~seed=3", "seed=1e3"]
    + ["seed=0x10", "optimizer.learning_rate=0.10", "model=mlp", "a-b=1", "seed=07 "],
)
def test_a_jobs_swept_value_is_the_one_hydras_parser_reads(override):
    # A seed is new in every job: `key=integer` is read without Hydra's parser, to the same.
    (parsed,) = OverridesParser.create().parse_overrides([override])
    key = parsed.key_or_group
    assert swept_values([override], [key]) == {key: parsed.get_value_element_as_str()}


def test_a_sweep_parent_is_named_by_what_it_sweeps_then_what_it_fixes():
    overrides = ["model=mlp", "seed=range(5)", "optimizer.learning_rate=0.1,0.5,2.0"]
    assert planned_jobs(overrides) == 15
    assert fixed_overrides(overrides) == ["model=mlp"]
    name = sweep_run_name(["seed", "optimizer.learning_rate"], ["model=mlp"], 15)
    assert name == "seed x lr (15 jobs) model=mlp"


def test_config_tags_become_mlflow_tags_and_bad_ones_are_refused(compose_config):
    assert user_tags(["baseline", "team:ml", "note: a b"]) == {
        "baseline": "true",
        "team": "ml",
        "note": "a b",
    }
    with pytest.raises(ConfigError, match=r"^tags=\['ok', 'bad@tag'\] is not allowed: names of"):
        validate(compose_config("tags=[ok,'bad@tag']"))


def test_the_experiment_opens_in_the_model_training_view(tracking_uri):
    experiment_id = configure(tracking_uri, "fresh")
    client = MlflowClient(tracking_uri)
    assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == (
        "custom_model_development"
    )
    # A kind the user chose stays; one the UI only guessed is replaced.
    client.set_experiment_tag(experiment_id, "mlflow.experimentKind", "genai_development")
    configure(tracking_uri, "fresh")
    assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == (
        "genai_development"
    )
    client.set_experiment_tag(experiment_id, "mlflow.experimentKind", "genai_development_inferred")
    configure(tracking_uri, "fresh")
    assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == (
        "custom_model_development"
    )


def test_runs_go_to_the_configured_experiment_and_a_deleted_one_is_refused(tracking_uri):
    experiment_id = configure(tracking_uri, "mine")
    with mlflow.start_run() as run:
        pass
    assert run.info.experiment_id == experiment_id
    MlflowClient(tracking_uri).delete_experiment(experiment_id)
    with pytest.raises(ConfigError, match=r"^tracking.experiment='mine' is deleted; restore it"):
        configure(tracking_uri, "mine")


def test_a_write_that_lost_a_race_is_tried_once_more_and_only_once():
    attempts = []

    def write(value):
        attempts.append(value)
        if len(attempts) < failures:
            raise mlflow.exceptions.MlflowException(
                "duplicate key value violates a constraint", error_code=BAD_REQUEST
            )
        return value

    failures = 2
    assert retried_on_conflict(write)("tag") == "tag"
    assert attempts == ["tag", "tag"]
    attempts.clear()
    failures = 3
    with pytest.raises(mlflow.exceptions.MlflowException, match="duplicate key"):
        retried_on_conflict(write)("tag")
    assert attempts == ["tag", "tag"]


def test_an_error_that_is_no_conflict_is_not_tried_again():
    attempts = []

    def write(value):
        attempts.append(value)
        raise mlflow.exceptions.MlflowException("the server broke", error_code=INTERNAL_ERROR)

    with pytest.raises(mlflow.exceptions.MlflowException, match="the server broke"):
        retried_on_conflict(write)("tag")
    assert attempts == ["tag"]


def test_a_run_alone_is_named_by_its_overrides_and_a_preset_by_its_name():
    assert single_run_name(["model=mlp", "dataset=xor"]) == "model=mlp dataset=xor"
    assert single_run_name(["+experiment=neuron_bias"]) == "neuron_bias"
    assert single_run_name(["+experiment=book/xor_mlp", "seed=1"]) == "book/xor_mlp seed=1"


def test_a_runs_colour_goes_from_red_unsolved_to_green_solved():
    assert outcome_colour(1.0) == "#1a7f37"
    assert outcome_colour(0.0) == "#b42318"
    assert outcome_colour(0.5) == "#675128"


def test_every_link_opens_the_model_training_view(tracking_uri):
    mlflow.set_tracking_uri(tracking_uri)
    assert run_url("7", "abc") == (
        "http://127.0.0.1:5000/#/experiments/7/runs/abc?workflowType=machine_learning"
    )


def test_the_sweep_link_opens_the_model_training_view_filtered_to_the_sweep(tracking_uri):
    mlflow.set_tracking_uri(tracking_uri)
    url = runs_url("7", sweep_filter("abc123"))
    assert url == (
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
        "&searchFilter=tags.mlflow.parentRunId%20%3D%20%22abc123%22"
    )
    mlflow.set_tracking_uri("http://mlflow.internal:5000/")
    assert runs_url("7").startswith("http://mlflow.internal:5000/#/experiments/7/runs?")
