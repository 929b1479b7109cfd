"""What a sweep's jobs and its callback share through the sweep folder: the parent run's id and
the loss curves a sweeper already holds.

The folder, not the environment or a module global: workers started apart from the launching
process (RQ, Ray on several nodes, SLURM with --export=NONE) do not inherit its environment,
but they see the folder.
"""

import logging
import os
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

PARENT_RUN_ENV = "GATELAB_SWEEP_RUN_ID"
PARENT_RUN_FILE = "mlflow_parent_run_id"
# Every member's full loss curve, by child run id (a vectorized sweep writes it).
LOSSES_FILE = "losses.npz"


def parent_run_id(sweep_dir: str | Path) -> str | None:
    """The MLflow run of the sweep whose folder is `sweep_dir` (`hydra.sweep.dir`), if any."""
    if os.environ.get(PARENT_RUN_ENV):
        return os.environ[PARENT_RUN_ENV]
    path = Path(sweep_dir) / PARENT_RUN_FILE
    if not path.is_file():
        return None
    return path.read_text().strip() or None


def record_parent_run_id(sweep_dir: Path, run_id: str) -> None:
    """Write the parent run id where `parent_run_id` finds it, whole or not at all."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    path = sweep_dir / PARENT_RUN_FILE
    if path.is_file():
        log.warning("%s already holds a sweep's run id: two sweeps share this folder", path)
    new = sweep_dir / f".{PARENT_RUN_FILE}.{os.getpid()}"
    new.write_text(run_id + "\n")
    os.replace(new, path)


def swept_keys_of(parent_run_id: str) -> list[str]:
    """The keys the sweep with this parent run varies, from its tag `sweep.params`."""
    listed = MlflowClient().get_run(parent_run_id).data.tags.get("sweep.params", "")
    return [key for key in listed.split(", ") if key]


def write_losses(sweep_dir: Path, losses: dict[str, np.ndarray]) -> Path:
    """Every member's loss curve, by child run id, as `losses.npz` in the sweep folder."""
    path = Path(sweep_dir) / LOSSES_FILE
    new = path.with_name(f".{LOSSES_FILE}.{os.getpid()}.npz")
    np.savez_compressed(new, **losses)
    os.replace(new, path)
    return path


def read_losses(sweep_dir: Path) -> dict[str, np.ndarray]:
    """The loss curves `write_losses` left in the sweep folder, or none."""
    path = Path(sweep_dir) / LOSSES_FILE
    if not path.is_file():
        return {}
    with np.load(path) as arrays:
        return {name: arrays[name] for name in arrays.files}
