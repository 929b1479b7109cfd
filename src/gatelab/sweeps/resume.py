"""Resume instead of rework: an interrupted sweep is finished by re-running its command with
`hydra.sweep.dir=<its folder>`.

The folder names the sweep's parent run (`sweep_folder`). Re-opened, the sweep keeps its parent and
cells; the jobs whose child run FINISHED are skipped (their numbers and final losses go into the
folder, where every sweeper and every job process reads them); the other children (KILLED,
FAILED, left RUNNING by a dead process) are deleted, and their jobs run again under the same
parent. So the summary covers every job once.
"""

import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import LifecycleStage
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from gatelab.errors import ConfigError
from gatelab.sweeps import sweep_folder
from gatelab.tracking.experiment import every_run
from gatelab.tracking.records import DIVERGED, FINISHED, RUNNING, SWEEP_TAG
from gatelab.tracking.store import HOST_TAG, PID_TAG, process_alive, process_tags

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resumed:
    """A sweep re-opened in its folder: its parent, cells and what an earlier run finished."""

    run_id: str
    experiment_id: str
    cells: dict[str, str]
    finished: dict[int, float]
    replaced: int


def reopen(client: MlflowClient, sweep_dir: Path, overrides: str, tracking_uri: str) -> Resumed:
    """Re-open the sweep whose folder is `sweep_dir` for the same `overrides` (its
    `hydra.overrides` tag), or raise ConfigError saying why it cannot be."""
    run_id = (sweep_dir / sweep_folder.PARENT_RUN_FILE).read_text().strip()
    where = f"hydra.sweep.dir={sweep_dir} holds sweep {run_id}"
    try:
        run = client.get_run(run_id)
    except MlflowException:
        run = None
    if run is None or run.info.lifecycle_stage == LifecycleStage.DELETED:
        raise ConfigError(
            f"{where}, which is not in the tracking store {tracking_uri}; resume it with the "
            "tracking.uri it ran with, or give this sweep a folder of its own"
        )
    theirs = run.data.tags.get("hydra.overrides", "")
    if theirs != overrides:
        raise ConfigError(
            f"{where} of other overrides ({theirs or 'none'}); re-run that sweep's command to "
            "finish it, or give this sweep a folder of its own"
        )
    if run.info.status == RUNNING and _alive_here(run.data.tags):
        raise ConfigError(
            f"{where}, still running in process {run.data.tags[PID_TAG]}; let it end (or stop "
            "it) before resuming it"
        )
    finished, replaced = _sort_children(client, run.info.experiment_id, run_id)
    cells_file = sweep_dir / sweep_folder.CELLS_FILE
    cells = sweep_folder.sweep_of(sweep_dir).cells if cells_file.is_file() else {}
    for reopened in [run_id, *cells.values()]:
        client.update_run(reopened, RUNNING)
    for key, value in process_tags().items():
        client.set_tag(run_id, key, value)
    sweep_folder.record_finished(sweep_dir, finished)
    log.info(
        "resuming sweep %s in %s: %d job(s) finished earlier are skipped; %d unfinished "
        "run(s) are replaced",
        run_id,
        sweep_dir,
        len(finished),
        replaced,
    )
    return Resumed(run_id, run.info.experiment_id, cells, finished, replaced)


def _alive_here(tags: dict[str, str]) -> bool:
    pid = tags.get(PID_TAG, "")
    return tags.get(HOST_TAG) == socket.gethostname() and pid.isdigit() and process_alive(int(pid))


def _sort_children(
    client: MlflowClient, experiment_id: str, run_id: str
) -> tuple[dict[int, float], int]:
    """The final loss of each job whose child FINISHED, by number; the other children deleted.

    Returns the finished jobs and how many children were deleted. A FAILED child that
    diverged (`failure_reason` diverged) trained to its end: it counts as finished.
    """
    children = every_run(client, experiment_id, f"tags.`{SWEEP_TAG}` = '{run_id}'")
    finished: dict[int, float] = {}
    replaced = 0
    for child in children:
        number = child.data.tags.get("hydra.job.num", "")
        # A diverged job ended FAILED, but it trained to its end: its result stands.
        whole = child.info.status == FINISHED or child.data.tags.get("failure_reason") == DIVERGED
        if whole and number.isdigit() and int(number) not in finished:
            finished[int(number)] = child.data.metrics.get("loss", float("nan"))
        else:
            client.delete_run(child.info.run_id)
            replaced += 1
    return finished, replaced
