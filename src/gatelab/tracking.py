"""Everything MLflow: one run per training job, with its config, history and results.

TensorFlow is not imported here: the sweep callback uses this module in the process that
launches a sweep, which never trains (see `gatelab.backend`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import mlflow
import numpy as np
from mlflow.entities import LifecycleStage, Metric, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.models import Model, infer_signature
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from gatelab import store
from gatelab.data import Dataset
from gatelab.history import LOSS_FILE, save_losses

if TYPE_CHECKING:
    import keras
    from matplotlib.figure import Figure


# The experiment tag from which `mlflow ui` (3.x) chooses its view; without it the UI guesses,
# and may open a GenAI overview (traces, token usage) instead of the runs table.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
# Where `mlflow ui` listens unless told otherwise.
LOCAL_UI_ADDRESS = "http://127.0.0.1:5000"


def configure(uri: str | None, experiment: str) -> str:
    """Point MLflow at `uri` (None keeps MLflow's default) and return the experiment id."""
    if uri:
        mlflow.set_tracking_uri(uri)
    # Under the store's lock: parallel workers and sweeps race at creating both.
    with store.prepared(mlflow.get_tracking_uri()):
        # Connected once the store is whole and in its journal mode.
        client = MlflowClient()
        found = client.get_experiment_by_name(experiment)
        if found is None:
            try:
                # Created with its kind: no later tag write for a concurrent creator to race.
                client.create_experiment(
                    experiment, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND}
                )
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            found = client.get_experiment_by_name(experiment)
        if found.lifecycle_stage != LifecycleStage.ACTIVE:
            raise store.StoreError(
                f"tracking.experiment={experiment!r} is deleted; restore it "
                f"(mlflow experiments restore --experiment-id {found.experiment_id}) "
                "or choose another name"
            )
        kind = found.tags.get(EXPERIMENT_KIND_TAG, "")
        # A kind the user (or the UI's kind selector) chose stays; a missing or guessed one not.
        if not kind or kind.endswith("_inferred"):
            retried_on_conflict(client.set_experiment_tag)(
                found.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND
            )
    # The experiment `mlflow.start_run` uses.
    mlflow.set_experiment(experiment_id=found.experiment_id)
    return found.experiment_id


T = TypeVar("T")


def retried_on_conflict(write: Callable[..., T]) -> Callable[..., T]:
    """`write`, tried once more if it fails: processes started together race at creating the
    same record (an experiment tag, a dataset), and on a server the loser gets an error."""

    def write_again_if_raced(*args: Any, **kwargs: Any) -> T:
        try:
            return write(*args, **kwargs)
        except MlflowException:
            # By now the winner's record exists, and writing it again is an update.
            return write(*args, **kwargs)

    return write_again_if_raced


# `scheme://user:password@host` and secret-looking query values (`?token=...`, `&password=...`).
# Greedy up to the last `@` of the authority: a password may hold an unescaped `@`. Hydra
# escapes `:` in the overrides it logs and in `override_dirname` (`http\://user\:pw@`).
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*\\*://)[^/?#\s'\"]*@")
_SECRET_QUERY = re.compile(
    r"([?&;][^=&\s'\"]*(?:token|password|passwd|pwd|secret|key|auth|signature|sig|credential)"
    r"[^=&\s'\"]*=)[^&\s'\",]*",
    re.IGNORECASE,
)
REDACTED = "***"


def redact(text: str) -> str:
    """`text` with the credentials of any URI in it (`user:password@`, `?token=`) as ***."""
    return _SECRET_QUERY.sub(rf"\g<1>{REDACTED}", _USERINFO.sub(rf"\g<1>{REDACTED}@", text))


def redact_files(paths: list[Path]) -> None:
    """Rewrite files holding a credential (Hydra's `.hydra/*.yaml`, `multirun.yaml`) without it."""
    for path in paths:
        if not path.is_file():
            continue
        text = path.read_text()
        if redact(text) != text:
            # Renamed into place: parallel jobs rewrite the same `multirun.yaml`.
            new = path.with_name(f".{path.name}.{os.getpid()}")
            new.write_text(redact(text))
            os.replace(new, path)


def redact_output() -> None:
    """Redact log records, warnings and tracebacks of this process: Hydra prints the overrides."""
    global _output_redacted
    if _output_redacted:
        return
    _output_redacted = True
    make_record = logging.getLogRecordFactory()

    def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return record
        record.msg, record.args = redact(message), None
        if record.exc_info:
            trace = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = redact(trace.rstrip("\n"))
        return record

    logging.setLogRecordFactory(redacted_record)
    format_warning = warnings.formatwarning
    warnings.formatwarning = lambda *args, **kwargs: redact(format_warning(*args, **kwargs))

    def excepthook(kind: type[BaseException], error: BaseException, trace: Any) -> None:
        sys.stderr.write(redact("".join(traceback.format_exception(kind, error, trace))))

    sys.excepthook = excepthook
    # MLflow prints a link to each run with the server's address as given, credentials included.
    sys.stdout, sys.stderr = _RedactingStream(sys.stdout), _RedactingStream(sys.stderr)


_output_redacted = False


class _RedactingStream:
    """A console stream that redacts what is written to it."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(redact(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def ui_command() -> str:
    """How to see the current store: a tracking server's address, or `mlflow ui` on a local one."""
    uri = redact(mlflow.get_tracking_uri())
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    return f"mlflow ui --backend-store-uri {uri}"


def ui_address() -> str:
    """The UI's address: the tracking server's, or that of `mlflow ui` on a local store."""
    uri = redact(mlflow.get_tracking_uri())
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_UI_ADDRESS


def runs_url(experiment_id: str, search_filter: str = "", compare: str = "") -> str:
    """A link to the experiment's runs in the model-training view, filtered by `search_filter`.

    Args:
        compare: `CHART` opens the chart view instead of the runs table.
    """
    # The query parameters the MLflow 3 UI reads from its address (`workflowType` picks the
    # model-training view, `searchFilter` fills the search box, `compareRunsMode` the view).
    query = "workflowType=machine_learning"
    if search_filter:
        query += f"&searchFilter={quote(search_filter, safe='')}"
    if compare:
        query += f"&compareRunsMode={compare}"
    return f"{ui_address()}/#/experiments/{experiment_id}/runs?{query}"


def sweep_filter(parent_run_id: str) -> str:
    """The runs-table filter that shows only the children of one sweep."""
    return f'tags.mlflow.parentRunId = "{parent_run_id}"'


def run_url(experiment_id: str, run_id: str) -> str:
    return f"{ui_address()}/#/experiments/{experiment_id}/runs/{run_id}"


@dataclass
class Outcome:
    """How a run ends when nothing raised: FINISHED, or FAILED with a reason such as `diverged`."""

    failure_reason: str | None = None


@contextmanager
def tracked_run(
    run_name: str, tags: dict[str, str], parent_run_id: str | None = None
) -> Iterator[tuple[mlflow.ActiveRun, Outcome]]:
    """Start an MLflow run that always ends: FINISHED, FAILED (with the error as a tag), KILLED."""
    tags = {key: redact(value) for key, value in {**tags, **store.process_tags()}.items()}
    run = mlflow.start_run(run_name=redact(run_name), tags=tags, parent_run_id=parent_run_id)
    outcome = Outcome()
    try:
        yield run, outcome
    except KeyboardInterrupt:
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException as error:
        mlflow.set_tags(error_tags(error))
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    if outcome.failure_reason:
        mlflow.set_tag("failure_reason", outcome.failure_reason)
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
    else:
        mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))


def error_tags(error: BaseException) -> dict[str, str]:
    """Tags of a run that raised: the sweep summary reads `failure_reason`, people `error`."""
    return {"failure_reason": "error", "error": redact(f"{type(error).__name__}: {error}")}


def run_name(overrides: list[str]) -> str:
    """A single run is named by its command-line overrides, as Hydra lists them."""
    return redact(" ".join(overrides))


# Short names of keys people sweep, for run names, legends and metric names.
KEY_ALIASES = {"optimizer.learning_rate": "lr"}


def short_key(key: str) -> str:
    """`optimizer.learning_rate` is `lr`, another key its last part (`trainer.epochs`: epochs)."""
    key = key.lstrip("+~")
    return KEY_ALIASES.get(key, key.rpartition(".")[2])


def short_keys(keys: list[str]) -> dict[str, str]:
    """Each key's short name, or the key itself where two keys would share one."""
    short = {key: short_key(key) for key in keys}
    clashing = {name for name in short.values() if list(short.values()).count(name) > 1}
    return {key: key if name in clashing else name for key, name in short.items()}


def child_run_name(swept_values: dict[str, str]) -> str:
    """A sweep job's run name: its swept values only, `seed=3 lr=0.5`."""
    names = short_keys(list(swept_values))
    return redact(" ".join(f"{names[key]}={value}" for key, value in swept_values.items()))


def sweep_run_name(swept: list[str], fixed_overrides: list[str], jobs: int | None) -> str:
    """A sweep's parent: what it sweeps, `sweep seed x lr (15 jobs)`, then what it fixes."""
    names = short_keys(swept)
    parts = ["sweep", " x ".join(names[key] for key in swept) or "(nothing swept)"]
    if jobs is not None:
        parts.append(f"({jobs} job{'s' if jobs != 1 else ''})")
    return redact(" ".join(parts + fixed_overrides))


# Settings that change how a run is reported or stored, not what it learns.
NOT_PARAMS = ("trainer.print_every", "trainer.jit_compile", "trainer.report", "tags")


def config_params(cfg: DictConfig, resolve: bool = True) -> dict[str, Any]:
    """The experiment's knobs as MLflow params: dotted keys; lists compact, as typed (`[2]`).

    Left out: Hydra's `hydra` node, every `_target_`, `tracking.*` and `NOT_PARAMS`.
    """
    tree = OmegaConf.to_container(cfg, resolve=resolve)
    tree.pop("hydra", None)
    return {
        key: compact_param(value)
        for key, value in flatten(tree).items()
        if not (
            key.rpartition(".")[2] == "_target_" or key.startswith("tracking.") or key in NOT_PARAMS
        )
    }


def compact_param(value: Any) -> Any:
    """A param as the UI shows it best: lists compact (`[2]`), strings without credentials."""
    if isinstance(value, list):
        return redact(json.dumps(value, separators=(",", ":")))
    return redact(value) if isinstance(value, str) else value


def user_tags(tags: list[str]) -> dict[str, str]:
    """The config's `tags` as MLflow tags: `baseline` gives `baseline=true`, `team:ml` `team=ml`."""
    pairs = (tag.partition(":") for tag in tags)
    return {key.strip(): value.strip() if sep else "true" for key, sep, value in pairs}


def metric_key(text: str) -> str:
    """`text` with the characters MLflow refuses in a metric name (such as `=`) as `_`."""
    return re.sub(r"[^\w.\-/ :]", "_", text)


def log_dataset(dataset: Dataset, name: str) -> None:
    """The run's truth table as an MLflow dataset input (the runs table's Dataset column)."""
    retried_on_conflict(mlflow.log_input)(
        mlflow.data.from_numpy(dataset.inputs, targets=dataset.targets[:, 0], name=name),
        context="training",
    )


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config to dotted keys, such as `optimizer.learning_rate`."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def loss_steps(epochs: int, epochs_run: int, max_points: int) -> np.ndarray:
    """The epochs (1-based) whose loss becomes a point of metric `loss`: at most `max_points`.

    Every ceil(epochs / max_points)-th epoch and always the last one run; with `max_points` 0
    only the last, the final loss.
    """
    stride = math.ceil(epochs / max_points) if max_points else epochs
    steps = np.arange(stride, epochs_run + 1, stride)
    if not steps.size or steps[-1] != epochs_run:
        steps = np.append(steps, epochs_run)
    return steps


def log_history(run_id: str, loss: np.ndarray, *, epochs: int, max_points: int) -> None:
    """Metric `loss` at step = epoch (1-based), at most `max_points` epochs, in batched writes."""
    timestamp = int(time.time() * 1000)
    metrics = [
        Metric(key="loss", value=float(loss[epoch - 1]), timestamp=timestamp, step=int(epoch))
        for epoch in loss_steps(epochs, len(loss), max_points)
    ]
    MlflowClient().log_batch(run_id, metrics=metrics)


def log_loss_file(loss: np.ndarray, path: Path | None) -> None:
    """Every epoch's loss as artifact `loss.csv`: the job folder's file, or one written now."""
    if path is not None and path.is_file():
        mlflow.log_artifact(str(path))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / LOSS_FILE
        save_losses(loss, path)
        mlflow.log_artifact(str(path))


def weights_by_layer(model: keras.Model) -> dict[str, dict[str, list]]:
    """Every kernel and bias by layer name, as the chapter prints `model.weights`."""
    return {
        layer.name: {weight.name: weight.numpy().tolist() for weight in layer.weights}
        for layer in model.layers
    }


def log_results(
    model: keras.Model,
    dataset: Dataset,
    *,
    outputs: np.ndarray,
    loss: np.ndarray,
    epochs: int,
    max_loss_points: int,
    loss_file: Path | None,
    metrics: dict[str, float],
    figures: dict[str, Figure],
    arrays: dict[str, dict[str, np.ndarray]],
    summary: str,
    config_dir: Path | None,
    log_model: bool = True,
) -> None:
    """Final metrics, the model, the loss history, weights, predictions and the other files.

    Args:
        epochs: the epochs asked for; `loss` holds fewer when training diverged.
        max_loss_points: the most points of metric `loss` (see `loss_steps`).
        loss_file: the job's `loss.csv`, logged as it is; None writes one.
        figures: PNG artifacts by file name (none when `tracking.log_figures` is off).
        arrays: `.npz` artifacts by file name, each of named arrays.
        log_model: whether to log the Keras model (MLflow's keras flavor).
    """
    run_id = mlflow.active_run().info.run_id
    mlflow.log_metrics(metrics)
    if log_model:
        log_keras_model(model, dataset, outputs)
    log_history(run_id, loss, epochs=epochs, max_points=max_loss_points)
    log_loss_file(loss, loss_file)
    mlflow.log_dict(weights_by_layer(model), "weights.json")
    mlflow.log_table(
        {
            "inputs": dataset.inputs.tolist(),
            "target": dataset.targets[:, 0].tolist(),
            "output": outputs[:, 0].tolist(),
        },
        artifact_file="predictions.json",
    )
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
