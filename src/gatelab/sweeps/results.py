"""A sweep's jobs read back from MLflow, which every job wrote to wherever it ran."""

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from mlflow.entities import Run, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from gatelab.history import LOSS_FILE, load_losses
from gatelab.plane import BOUNDARY_FILE
from gatelab.sweeps.summary import JobResult
from gatelab.tracking.children import child_store
from gatelab.tracking.records import SWEEP_TAG


def read_results(client: MlflowClient, parent_run_id: str, swept: list[str]) -> list[JobResult]:
    """Every job of the sweep (child of its parent or of a cell), in job order."""
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    runs = child_store(client.tracking_uri).runs_tagged(experiment_id, SWEEP_TAG, parent_run_id)
    return sorted((_result(run, swept) for run in runs), key=lambda result: result.number)


def _result(run: Run, swept: list[str]) -> JobResult:
    metrics, tags = run.data.metrics, run.data.tags
    status = run.info.status
    if status == "FAILED":
        status = f"FAILED: {tags.get('failure_reason', 'error')}"
    epochs_to_solve = metrics.get("epochs_to_solve")
    return JobResult(
        overrides=tags.get("hydra.overrides", ""),
        parent_run_id=tags.get("mlflow.parentRunId", ""),
        number=int(tags.get("hydra.job.num", -1)),
        name=run.info.run_name,
        values={key: _swept_value(run, key) for key in swept},
        loss=metrics.get("loss", float("nan")),
        accuracy=metrics.get("accuracy", float("nan")),
        epochs_to_solve=int(epochs_to_solve) if epochs_to_solve is not None else None,
        status=status,
        run_id=run.info.run_id,
        output_dir=tags.get("hydra.output_dir", ""),
    )


def _swept_value(run: Run, key: str) -> str:
    # A swept config group (model=perceptron,mlp) is a tag; a swept value is a param.
    return run.data.params.get(key, run.data.tags.get(f"hydra.choices.{key}", ""))


def kill_if_running(client: MlflowClient, result: JobResult) -> JobResult:
    """End a stopped sweep's job KILLED if its run is still RUNNING."""
    if result.status != "RUNNING":
        return result
    # A stopped sweep's jobs stop with it (joblib's workers do); a job that goes on
    # elsewhere, as on SLURM, sets its own status again when it ends.
    killed = RunStatus.to_string(RunStatus.KILLED)
    client.set_terminated(result.run_id, killed)
    return replace(result, status=killed)


def loss_history(
    client: MlflowClient, result: JobResult, known: dict[str, np.ndarray], fetch: bool = True
) -> np.ndarray:
    """The job's losses: known already, from its output folder, else from its run's loss.csv.

    Args:
        known: loss curves by run id that the sweeper left in the sweep folder.
        fetch: whether to download the artifact (a stopped sweep ends without: none if unknown).
    """
    # Not from metric `loss`: it holds only every few epochs' (tracking.max_loss_points).
    if result.run_id in known:
        return known[result.run_id]
    path = Path(result.output_dir) / LOSS_FILE
    if result.output_dir and path.is_file():
        return load_losses(path)
    if not fetch:
        return np.array([])
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client.download_artifacts(result.run_id, LOSS_FILE, folder)
        except (OSError, MlflowException):
            return np.array([])  # the job failed before it trained
        return load_losses(Path(path))


def boundary(
    client: MlflowClient,
    result: JobResult,
    known: dict[str, dict[str, np.ndarray]],
    fetch: bool = True,
) -> dict[str, np.ndarray] | None:
    """The job's final decision boundary: known already, from its folder, else its artifacts.

    Args:
        known: boundaries by run id that the sweeper left in the sweep folder.
        fetch: as for `loss_history`.
    """
    if result.run_id in known:
        return known[result.run_id]
    path = Path(result.output_dir) / BOUNDARY_FILE
    if result.output_dir and path.is_file():
        return _arrays(path)
    if not fetch:
        return None
    names = {artifact.path for artifact in client.list_artifacts(result.run_id)}
    if BOUNDARY_FILE not in names:
        return None
    with tempfile.TemporaryDirectory() as folder:
        return _arrays(Path(client.download_artifacts(result.run_id, BOUNDARY_FILE, folder)))


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as arrays:
        return {name: arrays[name] for name in arrays.files}


@dataclass
class JobArrays:
    """The jobs' loss curves and final boundaries, each read once (`loss_history`, `boundary`).

    Args:
        losses, boundaries: what the sweeper left in the sweep folder, by run id.
        fetch: whether to download what is not known or in a job folder.
    """

    client: MlflowClient
    losses: dict[str, np.ndarray]
    boundaries: dict[str, dict[str, np.ndarray] | None]
    fetch: bool = True

    def loss(self, result: JobResult) -> np.ndarray:
        if result.run_id not in self.losses:
            self.losses[result.run_id] = loss_history(self.client, result, {}, self.fetch)
        return self.losses[result.run_id]

    def boundary(self, result: JobResult) -> dict[str, np.ndarray] | None:
        if result.run_id not in self.boundaries:
            self.boundaries[result.run_id] = boundary(self.client, result, {}, self.fetch)
        return self.boundaries[result.run_id]
