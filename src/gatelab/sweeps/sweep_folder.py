"""What a sweep's jobs and its callback share through the sweep folder: the parent run's id, its
cells' run ids and the loss curves a sweeper already holds.

The folder, not the environment or a module global: workers started apart from the launching
process (RQ, Ray on several nodes, SLURM with --export=NONE) do not inherit its environment,
but they see the folder.
"""

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

from gatelab.sweeps.cells import cell_name
from gatelab.sweeps.summary import cell_keys
from gatelab.tracking.records import Job

log = logging.getLogger(__name__)

PARENT_RUN_ENV = "GATELAB_SWEEP_RUN_ID"
PARENT_RUN_FILE = "mlflow_parent_run_id"
# The run id of each cell of the grid, by cell name (`sweeps.cells`).
CELLS_FILE = "mlflow_cells.json"
# The jobs an earlier run of the sweep finished, with their final loss (`sweeps.resume`).
FINISHED_FILE = "mlflow_finished_jobs.json"
# Every member's full loss curve, by child run id (a vectorized sweep writes it).
LOSSES_FILE = "losses.npz"
# The final decision boundary of the members a gallery shows, by child run id (the same).
BOUNDARIES_FILE = "boundaries.npz"
# Every member's final weights and outputs, a group of rows per batch of children written:
# `<group>/run_ids` names the child run of each row of `<group>/<layer>/<weight>` and
# `<group>/output` (its output for each row of the truth table).
MEMBERS_FILE = "members.npz"


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


@dataclass(frozen=True)
class Sweep:
    """What a job needs to know of the sweep it is in: where its run goes and what names it."""

    run_id: str
    experiment_id: str
    swept: list[str]
    cells: dict[str, str] = field(default_factory=dict)
    # Job numbers an earlier run of this sweep finished, with their final loss: not run again.
    finished: dict[int, float] = field(default_factory=dict)

    def parent_of(self, overrides: list[str]) -> str:
        """The run a job with these overrides is a child of: its cell's, else the sweep's."""
        return self.cells.get(cell_name(overrides, cell_keys(self.swept)), self.run_id)

    def job(
        self, overrides: list[str], choices: dict[str, str], output_dir: Path, number: int
    ) -> Job:
        """A job of this sweep, as every sweeper and the callback describe it."""
        return Job(
            overrides=overrides,
            choices=choices,
            output_dir=output_dir,
            parent_run_id=self.parent_of(overrides),
            number=number,
            swept=self.swept,
            sweep_run_id=self.run_id,
            experiment_id=self.experiment_id,
        )


def sweep_of(sweep_dir: str | Path) -> Sweep | None:
    """The sweep whose folder is `sweep_dir`, if a sweep callback opened one there."""
    run_id = parent_run_id(sweep_dir)
    if run_id is None:
        return None
    run = MlflowClient().get_run(run_id)
    listed = run.data.tags.get("sweep.params", "")
    path = Path(sweep_dir) / CELLS_FILE
    cells = json.loads(path.read_text()) if path.is_file() else {}
    path = Path(sweep_dir) / FINISHED_FILE
    finished = json.loads(path.read_text()) if path.is_file() else {}
    return Sweep(
        run_id=run_id,
        experiment_id=run.info.experiment_id,
        swept=[key for key in listed.split(", ") if key],
        cells=cells,
        finished={int(number): loss for number, loss in finished.items()},
    )


def record_cells(sweep_dir: Path, cells: dict[str, str]) -> None:
    """Write the cells' run ids by name where `sweep_of` finds them, whole or not at all."""
    _write_json(sweep_dir, CELLS_FILE, cells)


def record_finished(sweep_dir: Path, finished: dict[int, float]) -> None:
    """Write the finished jobs' final losses by number where `sweep_of` finds them."""
    _write_json(sweep_dir, FINISHED_FILE, {str(number): loss for number, loss in finished.items()})


def _write_json(sweep_dir: Path, name: str, content: dict) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    new = sweep_dir / f".{name}.{os.getpid()}"
    new.write_text(json.dumps(content, indent=1) + "\n")
    os.replace(new, sweep_dir / name)


@dataclass
class SweepArrays:
    """A sweep's members as arrays, by child run id, kept in its folder: the summary's pictures
    and a member's weights need no download, and a resumed sweep adds to what is there.

    Args:
        losses: every member's full loss curve (`LOSSES_FILE`).
        boundaries: the final decision boundary of the members a gallery shows
            (`BOUNDARIES_FILE`).
        members: the final weights and outputs, a group of rows per batch of children written
            (`MEMBERS_FILE`).
    """

    losses: dict[str, np.ndarray] = field(default_factory=dict)
    boundaries: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    members: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def load(cls, sweep_dir: str | Path) -> "SweepArrays":
        """What `save` left in the sweep folder (nothing if it left nothing)."""
        folder = Path(sweep_dir)
        losses = {}
        if (folder / LOSSES_FILE).is_file():
            with np.load(folder / LOSSES_FILE) as arrays:
                losses = {name: arrays[name] for name in arrays.files}
        return cls(
            losses=losses,
            boundaries=_read_nested(folder / BOUNDARIES_FILE),
            members=_read_nested(folder / MEMBERS_FILE),
        )

    def save(
        self, sweep_dir: str | Path, client: MlflowClient | None = None, run_id: str = ""
    ) -> None:
        """Write the arrays into the sweep folder, each file whole or not at all; with `client`,
        log the losses and members onto the sweep's run `run_id` too."""
        folder = Path(sweep_dir)
        if any(self.boundaries.values()):
            _write_nested(folder / BOUNDARIES_FILE, self.boundaries)
        paths = []
        if self.losses:
            path = folder / LOSSES_FILE
            new = path.with_name(f".{LOSSES_FILE}.{os.getpid()}.npz")
            # Not compressed: float losses shrink by 14% in zip's deflate, for 2.5 s of a
            # 10,000-job sweep's one core (41 s at 100,000; docs/speed.md). `np.load` reads both.
            np.savez(new, **self.losses)
            os.replace(new, path)
            paths.append(path)
        if self.members:
            paths.append(_write_nested(folder / MEMBERS_FILE, self.members))
        if client is not None:
            for path in paths:
                client.log_artifact(run_id, str(path))


def _write_nested(path: Path, nested: dict[str, dict[str, np.ndarray]]) -> Path:
    """`{outer: {inner: array}}` as one `.npz` of arrays named `outer/inner`, whole or not."""
    flat = {
        f"{outer}/{name}": array
        for outer, arrays in nested.items()
        for name, array in arrays.items()
    }
    new = path.with_name(f".{path.name}.{os.getpid()}.npz")
    np.savez_compressed(new, **flat)
    os.replace(new, path)
    return path


def _read_nested(path: Path) -> dict[str, dict[str, np.ndarray]]:
    if not path.is_file():
        return {}
    nested: dict[str, dict[str, np.ndarray]] = {}
    with np.load(path) as arrays:
        for key in arrays.files:
            outer, _, name = key.partition("/")
            nested.setdefault(outer, {})[name] = arrays[key]
    return nested
