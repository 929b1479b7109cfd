"""`python src/train.py` as a user runs it: a subprocess against a temporary SQLite store."""

import os
import subprocess

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import PYTHON, TRAIN_SCRIPT, run_train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One chapter XOR run, made once, in a store the bad-input tests then add to."""
    workdir = tmp_path_factory.mktemp("store")
    tracking_uri = f"sqlite:///{workdir / 'mlflow.db'}"
    result = run_train(workdir, "model=mlp", "dataset=xor")
    assert result.returncode == 0, result.stderr
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("gatelab").experiment_id])
    mlflow.set_tracking_uri(tracking_uri)
    return workdir, tracking_uri, result, run


def test_the_run_finishes_with_config_params_and_group_tags(store):
    _, _, _, run = store
    assert run.info.status == "FINISHED"
    assert run.data.params["optimizer.learning_rate"] == "0.1"
    assert run.data.params["model.hidden_units"] == "[2]"
    assert run.data.params["trainer.epochs"] == "2000"
    assert run.data.params["dataset.gate"] == "xor"
    assert run.data.tags["hydra.overrides"] == "model=mlp dataset=xor"
    assert run.data.tags["hydra.choices.model"] == "mlp"
    assert run.data.tags["hydra.choices.optimizer"] == "sgd"
    assert len(run.data.tags["mlflow.source.git.commit"]) == 40
    assert run.info.run_name == "model=mlp dataset=xor"


def test_the_loss_is_a_bounded_metric_and_every_epoch_is_in_loss_csv(store):
    _, tracking_uri, _, run = store
    history = MlflowClient(tracking_uri).get_metric_history(run.info.run_id, "loss")
    # 2000 epochs, tracking.max_loss_points=1000: every second epoch, steps = epochs.
    assert sorted(metric.step for metric in history) == list(range(2, 2001, 2))
    assert run.data.metrics["accuracy"] == 1.0
    assert run.data.metrics["loss"] == max(history, key=lambda metric: metric.step).value
    every_epoch = np.loadtxt(
        mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="loss.csv"),
        delimiter=",",
        skiprows=1,
    )
    np.testing.assert_array_equal(every_epoch[:, 0], np.arange(1, 2001))
    for metric in history:
        assert np.float32(every_epoch[metric.step - 1, 1]) == np.float32(metric.value)


def test_artifacts_hold_weights_predictions_figure_summary_and_config(store):
    _, tracking_uri, _, run = store
    client = MlflowClient(tracking_uri)
    names = {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
    assert {"weights.json", "predictions.json", "loss_curve.png", "model_summary.txt"} <= names
    config_files = {artifact.path for artifact in client.list_artifacts(run.info.run_id, "config")}
    assert {"config/config.yaml", "config/overrides.yaml", "config/hydra.yaml"} <= config_files
    weights = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/weights.json")
    assert set(weights) == {"hidden_1", "output"}
    assert np.array(weights["hidden_1"]["kernel"]).shape == (2, 2)
    assert "Total params: 9" in mlflow.artifacts.load_text(
        f"runs:/{run.info.run_id}/model_summary.txt"
    )


def test_the_logged_model_predicts_in_a_fresh_process(store):
    _, _, _, run = store
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    outputs = model.predict(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32))
    np.testing.assert_array_equal(np.asarray(outputs).ravel() > 0.5, [False, True, True, False])
    assert model.metadata.signature is not None
    assert model.metadata.get_input_schema().inputs[0].shape == (-1, 2)


def test_the_console_shows_the_chapter_and_no_tensorflow_chatter(store):
    _, _, result, run = store
    console = result.stdout + result.stderr
    assert "Total params: 9" in console
    assert "epoch 2000/2000" in console
    assert "target  output" in console
    assert "hidden_1/kernel" in console
    assert run.info.run_id in console
    assert "mlflow ui --backend-store-uri" in console
    for chatter in ("oneDNN", "absl::InitializeLog", "cuda", "cpu_feature_guard"):
        assert chatter not in console


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("dataset=xorr", ["dataset", "xorr", "and, custom, nand, nor, or, xnor, xor"]),
        ("optimizer.learning_rate=-1", ["optimizer.learning_rate", "-1", "greater than 0"]),
        ("trainer.epochs=0", ["trainer.epochs", "0", "at least 1"]),
        ("trainer.epoch=5", ["trainer.epoch", "allowed fields are epochs"]),
        ("model.hidden_units=[0]", ["model.hidden_units", "[0]", "each at least 1"]),
        ("dataset.n_inputs=40", ["dataset.n_inputs", "40", "from 1 to 16"]),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit_leaving_the_store_intact(store, override, names):
    workdir, tracking_uri, _, first_run = store
    result = run_train(workdir, override)
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1, result.stderr
    for name in names:
        assert name in error_lines[0]
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("gatelab").experiment_id])
    assert [run.info.run_id for run in runs] == [first_run.info.run_id]
    assert all(run.info.status != "RUNNING" for run in runs)


def test_printing_the_config_never_imports_tensorflow(tmp_path):
    # The process that launches a sweep composes configs and runs the sweep callback, like
    # `--cfg job`; only processes that run jobs pay TensorFlow's start-up.
    script = (
        "import runpy, sys\n"
        "sys.argv = ['train.py', '--cfg', 'job', 'model=perceptron']\n"
        f"runpy.run_path({str(TRAIN_SCRIPT)!r}, run_name='__main__')\n"
        "import gatelab.sweeps.callback, gatelab.tracking.run, gatelab.tracking.writer\n"
        "print('imported:', sorted({'tensorflow', 'keras'} & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [PYTHON, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "_target_: gatelab.engine.models.build_perceptron" in result.stdout
    assert "imported: []" in result.stdout


def test_a_folder_that_cannot_be_written_is_one_line_and_exit_1(tmp_path):
    # sysfs refuses a new folder even to root, as a read-only or foreign folder refuses a user.
    result = run_train(tmp_path, "hydra.run.dir=/sys/gatelab_outputs", "trainer.epochs=5")
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("error: cannot write /sys/gatelab_outputs: ")
    assert line.endswith("or point hydra.run.dir (hydra.sweep.dir with -m) at one")


def test_loss_csv_is_stored_once_in_the_job_folder_and_the_local_artifact_store(store):
    workdir, _, _, run = store
    (in_folder,) = workdir.glob("outputs/*/*/loss.csv")
    artifact = mlflow.get_run(run.info.run_id).info.artifact_uri.removeprefix("file://")
    # One file with two names: a 2,500,000-epoch curve is tens of MB, not twice that.
    assert os.path.samefile(in_folder, f"{artifact}/loss.csv")
