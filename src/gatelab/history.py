"""What a training run recorded per epoch, what it scored, and the loss file it leaves behind."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LOSS_FILE = "loss.csv"
# An output on the target's side of this is right; a run with every output right has solved.
SOLVED_THRESHOLD = 0.5


@dataclass(frozen=True)
class History:
    """What a run recorded, one entry per epoch trained (fewer than asked when it diverged)."""

    loss: np.ndarray
    solved: np.ndarray
    # Each row's output (epochs, rows) at the step that trained it, before its update; recorded
    # only when asked (the chapter's console).
    outputs: np.ndarray | None = None
    # Weights (in `model.weights` order) after the epochs `engine.single.train` was asked to keep.
    snapshots: dict[int, list[np.ndarray]] = field(default_factory=dict)

    @property
    def epochs_to_solve(self) -> int | None:
        """First epoch (1-based) after which every output was on the right side of the threshold."""
        solved_epochs = np.flatnonzero(self.solved)
        return int(solved_epochs[0]) + 1 if solved_epochs.size else None

    @property
    def diverged(self) -> bool:
        return bool(self.loss.size) and not np.isfinite(self.loss[-1])


def save_losses(loss: np.ndarray, path: Path) -> None:
    """The loss of every epoch as CSV beside the job's config, for the sweep summary and you."""
    # Nine digits give a float32 back exactly. One join is twice as fast as np.savetxt, which
    # matters at the largest run allowed (2.5 million epochs, 49 MB).
    rows = [f"{epoch},{value:.9g}\n" for epoch, value in enumerate(loss.tolist(), start=1)]
    path.write_text("epoch,loss\n" + "".join(rows))


def load_losses(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)[:, 1]


def accuracy(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Fraction of rows whose output is on the target's side of `SOLVED_THRESHOLD`."""
    return float(np.mean((outputs > SOLVED_THRESHOLD) == (targets > SOLVED_THRESHOLD)))


def outcome_metrics(outputs: np.ndarray, targets: np.ndarray, history: History) -> dict[str, float]:
    """`accuracy`, `solved` (1 or 0) and, for a solved run only, `epochs_to_solve`."""
    metrics = {"accuracy": accuracy(outputs, targets)}
    metrics["solved"] = float(metrics["accuracy"] == 1.0)
    if metrics["solved"] and history.epochs_to_solve is not None:
        metrics["epochs_to_solve"] = history.epochs_to_solve
    return metrics
