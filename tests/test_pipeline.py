"""Each chapter preset reaches the chapter's outcome, and every run is tracked in MLflow."""

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from gatelab import pipeline
from gatelab.engine import single
from gatelab.engine.backend import keras
from gatelab.engine.models import boundary_view
from gatelab.plane import plane_grid


def run_preset(compose_config, tracking_uri, *overrides):
    """Run the pipeline in-process; return the MLflow run and its predictions table."""
    pipeline.run(compose_config(*overrides, f"tracking.uri='{tracking_uri}'"))
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("gatelab")
    (run,) = client.search_runs([experiment.experiment_id], max_results=1)
    predictions = mlflow.load_table("predictions.json", run_ids=[run.info.run_id])
    return run, np.array(predictions["output"].tolist())


@pytest.mark.parametrize("experiment", ["and", "or", "xor_mlp"])
def test_gate_presets_learn_their_table(compose_config, tracking_uri, experiment):
    run, _ = run_preset(compose_config, tracking_uri, f"+experiment={experiment}")
    assert run.info.status == "FINISHED"
    assert run.data.metrics["accuracy"] == 1.0
    assert 1 <= run.data.metrics["epochs_to_solve"] <= 2000


def test_one_perceptron_cannot_learn_xor(compose_config, tracking_uri):
    run, outputs = run_preset(compose_config, tracking_uri, "+experiment=xor_perceptron")
    assert run.data.metrics["accuracy"] < 1.0
    assert np.all(np.abs(outputs - 0.5) <= 0.1), outputs
    assert "epochs_to_solve" not in run.data.metrics


def test_without_a_bias_input_zero_cannot_learn(compose_config, tracking_uri):
    _, outputs = run_preset(compose_config, tracking_uri, "+experiment=neuron_no_bias")
    np.testing.assert_allclose(outputs, [0.5])


def test_with_a_bias_input_zero_learns(compose_config, tracking_uri):
    run, outputs = run_preset(compose_config, tracking_uri, "+experiment=neuron_bias")
    assert outputs[0] > 0.9
    assert run.data.metrics["accuracy"] == 1.0


def test_the_single_neuron_learns_target_zero(compose_config, tracking_uri):
    run, outputs = run_preset(compose_config, tracking_uri, "+experiment=neuron")
    assert outputs[0] < 0.1
    assert run.data.params["trainer.epochs"] == "1000"
    assert run.data.params["model.use_bias"] == "False"


def test_an_error_during_training_ends_the_run_failed_with_the_error(
    compose_config, tracking_uri, monkeypatch
):
    def broken_train(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(single, "train", broken_train)
    with pytest.raises(RuntimeError):
        pipeline.run(compose_config(f"tracking.uri='{tracking_uri}'"))
    (run,) = MlflowClient(tracking_uri).search_runs(
        [MlflowClient(tracking_uri).get_experiment_by_name("gatelab").experiment_id]
    )
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == "RuntimeError: disk on fire"
    assert mlflow.active_run() is None


def test_a_diverged_run_is_failed_with_reason_diverged(compose_config, tracking_uri):
    overrides = [
        "model.activation=linear",
        "model.output_activation=linear",
        "optimizer.learning_rate=1",
        "trainer.epochs=50",
    ]
    run, _ = run_preset(compose_config, tracking_uri, *overrides)
    assert run.info.status == "FAILED"
    assert run.data.tags["failure_reason"] == "diverged"
    history = MlflowClient(tracking_uri).get_metric_history(run.info.run_id, "loss")
    # Finite for an epoch first (at 10 or more it is inf in epoch 1): points to check below.
    assert 0 < len(history) < 50
    # It ends at the last finite loss (MLflow would show an infinite one as 1.79769e+308);
    # loss.csv keeps every epoch, the one that diverged included.
    assert all(np.isfinite(point.value) for point in history)
    path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="loss.csv")
    every_epoch = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    assert not np.isfinite(every_epoch[-1, 1])
    assert [point.step for point in history] == list(range(1, len(every_epoch)))


def test_the_model_and_figure_are_logged_unless_switched_off(compose_config, tracking_uri):
    client = MlflowClient(tracking_uri)

    def model_and_artifacts(run_id: str) -> tuple[list, set[str]]:
        experiment_id = client.get_run(run_id).info.experiment_id
        models = client.search_logged_models(
            [experiment_id], filter_string=f"source_run_id = '{run_id}'"
        )
        return models, {item.path for item in client.list_artifacts(run_id)}

    run, _ = run_preset(compose_config, tracking_uri, "trainer.epochs=5")
    models, artifacts = model_and_artifacts(run.info.run_id)
    assert models and {"loss_curve.png", "weights.json", "predictions.json"} <= artifacts

    switched_off = ["trainer.epochs=5", "tracking.log_model=false", "tracking.log_figures=false"]
    pipeline.run(compose_config(*switched_off, f"tracking.uri='{tracking_uri}'"))
    experiment = client.get_experiment_by_name("gatelab")
    latest = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"])[0]
    models, artifacts = model_and_artifacts(latest.info.run_id)
    assert not models and "loss_curve.png" not in artifacts
    assert {"weights.json", "predictions.json"} <= artifacts


def test_a_two_input_run_draws_its_decision_boundary_and_logs_its_table(
    compose_config, tracking_uri
):
    run, _ = run_preset(compose_config, tracking_uri, "+experiment=and", "trainer.epochs=50")
    client = MlflowClient(tracking_uri)
    names = {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
    assert {"decision_boundary.png", "boundary_epochs.png", "boundary.npz"} <= names
    (dataset_input,) = run.inputs.dataset_inputs
    assert (dataset_input.dataset.name, dataset_input.tags[0].value) == ("and", "training")
    assert run.data.metrics["solved"] == float(run.data.metrics["accuracy"] == 1.0)


def test_a_one_input_run_skips_the_boundary_with_a_note(compose_config, tracking_uri, caplog):
    with caplog.at_level("INFO", logger="gatelab.pipeline"):
        run, _ = run_preset(compose_config, tracking_uri, "+experiment=neuron")
    names = {
        artifact.path for artifact in MlflowClient(tracking_uri).list_artifacts(run.info.run_id)
    }
    assert not {"decision_boundary.png", "boundary_epochs.png", "boundary.npz"} & names
    assert "no decision-boundary picture: it needs 2 inputs, not 1" in caplog.text
    assert (run.data.metrics["solved"], run.data.params["dataset.inputs"]) == (1.0, "[[1.0]]")


def test_the_boundary_is_what_the_network_computes_over_the_plane():
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(2, activation="relu"), keras.layers.Dense(1)]
    )
    # Hidden unit 1 is x1 - 0.5 (its line x1 = 0.5), unit 2 is x2 - 0.25 (x2 = 0.25).
    weights = [np.eye(2), np.array([-0.5, -0.25]), np.array([[1.0], [2.0]]), np.array([0.0])]
    view = boundary_view(model, weights)
    grid = plane_grid()
    expected = np.maximum(grid[:, 0] - 0.5, 0) + 2 * np.maximum(grid[:, 1] - 0.25, 0)
    np.testing.assert_allclose(view.outputs.ravel(), expected, atol=1e-6)
    # Rows run along the second input: the last row is x2 = 1.5.
    assert grid[-1, 1] == 1.5 and view.outputs[-1, 0] == pytest.approx(2.5)
    np.testing.assert_allclose(view.hidden_lines, [[1, 0, -0.5], [0, 1, -0.25]])
    assert pipeline.snapshot_epochs(2000) == [80, 320, 720, 1280, 2000]
    assert pipeline.snapshot_epochs(3) == [1, 2, 3]


@pytest.mark.parametrize("max_points", [0, 7])
def test_a_run_logs_a_bounded_loss_metric_and_every_epoch_as_loss_csv(
    compose_config, tracking_uri, max_points
):
    run, _ = run_preset(
        compose_config,
        tracking_uri,
        "trainer.epochs=50",
        "trainer.print_every=0",
        f"tracking.max_loss_points={max_points}",
    )
    history = MlflowClient(tracking_uri).get_metric_history(run.info.run_id, "loss")
    steps = sorted(metric.step for metric in history)
    assert steps == ([50] if max_points == 0 else [8, 16, 24, 32, 40, 48, 50])
    path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="loss.csv")
    every_epoch = np.loadtxt(path, delimiter=",", skiprows=1)
    assert every_epoch.shape == (50, 2)
    assert np.float32(every_epoch[-1, 1]) == np.float32(run.data.metrics["loss"])
