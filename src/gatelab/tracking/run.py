"""Logging inside one job's run, through MLflow's fluent API (the active run).

A run always ends: FINISHED, FAILED with the error as a tag (or `failure_reason: diverged`), or
KILLED when stopped. What it logs is a `records.RunRecord` (the one definition of a job's run)
plus what only a single run has: the model, its pictures, loss.csv and the config files.
TensorFlow is not imported here.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow
import numpy as np
from mlflow.entities import Metric
from mlflow.models import Model, infer_signature
from mlflow.tracking import MlflowClient

from gatelab.data import Dataset
from gatelab.history import LOSS_FILE, save_losses
from gatelab.tracking.experiment import retried_on_conflict
from gatelab.tracking.records import RunRecord, error_tags
from gatelab.tracking.statuses import FAILED, FINISHED, KILLED

if TYPE_CHECKING:
    import keras
    from matplotlib.figure import Figure


@dataclass
class RunEnding:
    """How a run ends when nothing raised: FINISHED, or FAILED with a reason such as `diverged`."""

    failure_reason: str | None = None


@contextmanager
def tracked_run(
    run_name: str, tags: dict[str, str]
) -> Iterator[tuple[mlflow.ActiveRun, RunEnding]]:
    """Start an MLflow run that always ends: FINISHED, FAILED (with the error as a tag), KILLED.

    Args:
        run_name, tags: the job's (`records.run_name`, `records.run_tags`), its parent included.
    """
    run = mlflow.start_run(run_name=run_name, tags=tags)
    outcome = RunEnding()
    try:
        yield run, outcome
    except KeyboardInterrupt:
        mlflow.end_run(KILLED)
        raise
    except BaseException as error:
        try:
            mlflow.set_tags(error_tags(error))
        finally:  # ended even by a store that takes no tag (a full disk)
            mlflow.end_run(FAILED)
        raise
    if outcome.failure_reason:
        mlflow.set_tag("failure_reason", outcome.failure_reason)
        mlflow.end_run(FAILED)
    else:
        mlflow.end_run(FINISHED)


def log_dataset(dataset: Dataset, name: str) -> None:
    """The run's truth table as an MLflow dataset input (the runs table's Dataset column)."""
    retried_on_conflict(mlflow.log_input)(
        mlflow.data.from_numpy(dataset.inputs, targets=dataset.targets[:, 0], name=name),
        context="training",
    )


def log_loss_file(loss: np.ndarray, path: Path | None) -> None:
    """Every epoch's loss as artifact `loss.csv`: the job folder's file, or one written now."""
    if path is not None and path.is_file():
        mlflow.log_artifact(str(path))
        _one_copy(path)
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / LOSS_FILE
        save_losses(loss, path)
        mlflow.log_artifact(str(path))


def _one_copy(path: Path) -> None:
    """Make the job folder's `path` and its copy in a local artifact store one file (a hard
    link): a long run's curve (tens of MB) then takes its space once."""
    stored = urlparse(mlflow.get_artifact_uri(path.name))
    if stored.scheme not in ("", "file"):
        return  # a server's or a cloud store: the copy is elsewhere
    link = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        os.link(url2pathname(stored.path), link)
        os.replace(link, path)
    except OSError:
        link.unlink(missing_ok=True)  # another device, or a file system without hard links


def log_results(
    record: RunRecord,
    model: keras.Model | None,
    dataset: Dataset,
    *,
    outputs: np.ndarray,
    loss: np.ndarray,
    loss_file: Path | None,
    figures: dict[str, Figure],
    arrays: dict[str, dict[str, np.ndarray]],
    summary: str,
    config_dir: Path | None,
) -> None:
    """The record's metrics, result tags and results, the model, loss.csv and the other files
    (the record's status is the run's end, given to `tracked_run`'s `RunEnding`).

    Args:
        model: the trained model, logged in MLflow's keras flavor; None logs none.
        loss: every epoch's loss, for `loss.csv`.
        loss_file: the job's `loss.csv`, logged as it is; None writes one.
        figures: PNG artifacts by file name (none when `tracking.log_figures` is off).
        arrays: `.npz` artifacts by file name, each of named arrays.
    """
    run_id = mlflow.active_run().info.run_id
    metrics = record.metrics()
    client = MlflowClient()
    client.log_batch(run_id, metrics=[metric for metric in metrics if metric.key != "loss"])
    if model is not None:
        log_keras_model(model, dataset, outputs)
    client.log_batch(run_id, metrics=[metric for metric in metrics if metric.key == "loss"])
    mlflow.set_tags(record.result_tags)
    log_loss_file(loss, loss_file)
    mlflow.log_dict(record.weights, "weights.json")
    mlflow.log_table(record.predictions, artifact_file="predictions.json")
    for name, figure in figures.items():
        mlflow.log_figure(figure, name)
    with tempfile.TemporaryDirectory() as folder:
        for name, named_arrays in arrays.items():
            np.savez_compressed(Path(folder) / name, **named_arrays)
            mlflow.log_artifact(str(Path(folder) / name))
    mlflow.log_text(summary, "model_summary.txt")
    if config_dir is not None and config_dir.is_dir():
        mlflow.log_artifacts(str(config_dir), "config")


def log_keras_model(model: keras.Model, dataset: Dataset, outputs: np.ndarray) -> None:
    """The model in MLflow's keras flavor, with its signature and an input example."""
    # Before the loss history: MLflow links the run's step-0 metrics to the logged model by
    # reading every metric's whole history, up to max_loss_points loss points included.
    Model.log(
        artifact_path=None,
        name="model",
        flavor=_KerasFlavor,
        model=model,
        signature=infer_signature(dataset.inputs, outputs),
        input_example=dataset.inputs[:1],
        # MLflow would reload the model to predict the example (~0.2 s a run, and a retrace
        # warning from Keras per model); tests load the logged model and predict instead.
        validate_serving_input=False,
        # Explicit requirements skip MLflow's inference, which re-imports the model (~5 s).
        pip_requirements=[
            f"{package}=={version(package)}" for package in ("mlflow", "tensorflow", "keras")
        ],
    )


class _KerasFlavor:
    """`mlflow.keras`, creating the model folder first."""

    # Its `save_model` writes the input example before it creates the folder, so
    # `mlflow.keras.log_model(..., input_example=...)` fails (mlflow/mlflow#16183, open in 3.17).

    __name__ = "mlflow.keras"

    @staticmethod
    def save_model(path: str, **kwargs: Any) -> None:
        # `Model.log` reads `validate_serving_input` itself and passes it on; the flavor takes none.
        kwargs.pop("validate_serving_input", None)
        os.makedirs(path, exist_ok=True)
        mlflow.keras.save_model(path=path, **kwargs)


def log_series(run_id: str, key: str, values: np.ndarray, first_step: int = 0) -> None:
    """`values` as metric `key`, one point a step from `first_step`, in batched writes."""
    timestamp = int(time.time() * 1000)
    metrics = [
        Metric(key=key, value=float(value), timestamp=timestamp, step=step)
        for step, value in enumerate(values, start=first_step)
    ]
    MlflowClient().log_batch(run_id, metrics=metrics)
