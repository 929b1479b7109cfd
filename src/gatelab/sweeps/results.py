"""A sweep's jobs read back from MLflow, which every job wrote to wherever it ran; or, when this
process wrote every one of them (the vectorized sweeper's populations), as it wrote them.

The rows the summary needs (name, status, swept values, loss, accuracy, epochs to solve) are one
function of a run's tags, params and latest metrics (`job_result`), whether they come from the
store (`read_results`) or from the `RunRecord` just written (`hold`, then `written_results`):
reading 10,000 rows back took 2.3 s, 100,000 29 s (docs/speed.md).
"""

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from mlflow.entities import Run, RunData, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from gatelab.history import LOSS_FILE, load_losses
from gatelab.plane import BOUNDARY_FILE
from gatelab.sweeps.summary import JobResult
from gatelab.tracking.children import child_store
from gatelab.tracking.records import SWEEP_TAG, RunRecord


def read_results(client: MlflowClient, parent_run_id: str, swept: list[str]) -> list[JobResult]:
    """Every job of the sweep (child of its parent or of a cell), in job order."""
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    runs = child_store(client.tracking_uri).runs_tagged(experiment_id, SWEEP_TAG, parent_run_id)
    return sorted((_result(run, swept) for run in runs), key=lambda result: result.number)


def _result(run: Run, swept: list[str]) -> JobResult:
    info, data = run.info, run.data
    return job_result(info.run_name, info.run_id, info.status, data, swept)


@dataclass(frozen=True)
class RecordData:
    """What the store holds of a `RunRecord` the summary reads: its tags (created with, and at
    its end), params and latest metrics (the loss of its last point, its outcome)."""

    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]

    @classmethod
    def of(cls, record: RunRecord) -> "RecordData":
        # A run's latest point of a metric is its highest step: the loss's last epoch.
        last_loss = {"loss": record.loss_points[-1][1]} if record.loss_points else {}
        tags = {**record.tags, **record.result_tags}
        return cls(tags, record.params, {**last_loss, **record.outcome})


def job_result(
    name: str, run_id: str, status: str, data: RunData | RecordData, swept: list[str]
) -> JobResult:
    """A job's row of the summary from its run's name, id, status, tags, params and latest
    metrics (`data`: MLflow's, or a record's as the store would hold it)."""
    metrics, tags = data.metrics, data.tags
    if status == "FAILED":
        status = f"FAILED: {tags.get('failure_reason', 'error')}"
    epochs_to_solve = metrics.get("epochs_to_solve")
    return JobResult(
        overrides=tags.get("hydra.overrides", ""),
        parent_run_id=tags.get("mlflow.parentRunId", ""),
        number=int(tags.get("hydra.job.num", -1)),
        name=name,
        # A swept config group (model=perceptron,mlp) is a tag; a swept value is a param.
        values={key: data.params.get(key, tags.get(f"hydra.choices.{key}", "")) for key in swept},
        loss=metrics.get("loss", float("nan")),
        accuracy=metrics.get("accuracy", float("nan")),
        epochs_to_solve=int(epochs_to_solve) if epochs_to_solve is not None else None,
        status=status,
        run_id=run_id,
        output_dir=tags.get("hydra.output_dir", ""),
    )


@dataclass
class _Held:
    swept: list[str]
    results: dict[int, JobResult]
    # A value the store would have cut (it keeps a tag's first `MAX_TAG_VAL_LENGTH` characters),
    # or another sweep's keys: read from the store instead.
    unlike_store: bool = False


# Results of the sweeps' jobs this process wrote, by sweep run id (`hold`, `written_results`).
_HELD: dict[str, _Held] = {}


def hold(written: list[tuple[RunRecord, str]], swept: list[str]) -> None:
    """Keep the results of `written` (each record and the id of the run just written from it)
    for their sweep's summary (`written_results`); records of no sweep are not kept."""
    for record, run_id in written:
        sweep = record.tags.get(SWEEP_TAG)
        if sweep is None:
            continue
        held = _HELD.setdefault(sweep, _Held(list(swept), {}))
        result = job_result(record.name, run_id, record.status, RecordData.of(record), swept)
        texts = [result.overrides, result.output_dir, result.status, *result.values.values()]
        held.unlike_store |= held.swept != swept or max(map(len, texts)) > MAX_TAG_VAL_LENGTH
        held.results[record.job_number] = result


def written_results(
    parent_run_id: str, swept: list[str], planned: int | None
) -> list[JobResult] | None:
    """The results `hold` kept of the sweep `parent_run_id`, in job order, and forgets them;
    None unless they are its `planned` jobs, every one (jobs an earlier run of the sweep, a
    shard or a launched job wrote are read from the store: `read_results`)."""
    held = _HELD.pop(parent_run_id, None)
    if held is None or held.unlike_store or held.swept != swept or planned is None:
        return None
    if sorted(held.results) != list(range(planned)):
        return None
    return [held.results[number] for number in range(planned)]


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
