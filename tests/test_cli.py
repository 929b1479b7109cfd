"""What the command line hides of its libraries' chatter in a sweep's console (issue 26 item 11):
MLflow's progress bar for each artifact read back, TensorFlow's warning that a function was
traced again. A variable the user set wins."""

import logging

import pytest
import tensorflow as tf
from mlflow.tracking import MlflowClient

from gatelab import cli

PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@pytest.fixture
def quieted(monkeypatch):
    """`cli.quiet_libraries` run as the command line runs it, undone after the test."""
    monkeypatch.setattr(logging.getLogger("tensorflow"), "filters", [])
    monkeypatch.setenv(PROGRESS_BAR, "")
    monkeypatch.delenv(PROGRESS_BAR)
    return cli.quiet_libraries


def download_console(client: MlflowClient, run_id: str, folder, capfd) -> str:
    """What downloading the run's `loss.csv` into `folder` prints on stderr."""
    folder.mkdir()
    capfd.readouterr()
    client.download_artifacts(run_id, "loss.csv", str(folder))
    return capfd.readouterr().err


def test_mlflows_artifact_progress_bars_are_hidden_unless_the_user_asks(
    quieted, tracking_uri, tmp_path, monkeypatch, capfd
):
    client = MlflowClient(tracking_uri)
    run_id = client.create_run(client.create_experiment("console")).info.run_id
    (tmp_path / "loss.csv").write_text("epoch,loss\n1,0.5\n")
    client.log_artifact(run_id, str(tmp_path / "loss.csv"))
    monkeypatch.setenv(PROGRESS_BAR, "true")
    quieted()
    shown = download_console(client, run_id, tmp_path / "shown", capfd)
    assert "Downloading artifacts" in shown
    monkeypatch.delenv(PROGRESS_BAR)
    quieted()
    assert "Downloading artifacts" not in download_console(
        client, run_id, tmp_path / "hidden", capfd
    )


def trace_anew() -> None:
    """A function traced anew each call, as the population engine's draws of initial weights."""
    traced = tf.function(lambda x: x + 1)
    traced(tf.constant(1.0))


def test_tensorflows_retracing_warning_is_hidden(quieted, caplog):
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        for _ in range(6):
            trace_anew()
    assert "triggered tf.function retracing" in caplog.text
    caplog.clear()
    quieted()
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        for _ in range(6):
            trace_anew()
        logging.getLogger("tensorflow").warning("another warning")
    assert "retracing" not in caplog.text
    assert "another warning" in caplog.text
