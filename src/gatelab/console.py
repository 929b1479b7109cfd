"""What a run prints: the default console, or the book's own (`trainer.report=chapter`).

The default prints the loss every `trainer.print_every` epochs, the predictions and weights.

The chapter prints, for one row, `step error output` every 100 steps; for a table, the epoch's
`error_sum` every 200 epochs; and at the end `X: [1 1] Y: [1] Output: 0.9643550986660553` per
row and the weights `w`, `b`. Its step numbers are 0-based (`for i in range(1000)`, printed
when `i % 100 == 99`), its outputs are Python floats: the float32 pre-activation through a
float64 sigmoid (`1 / (1 + math.exp(-z))`), so this console prints them the same way.
"""

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gatelab.data import Dataset
from gatelab.engine.models import float64_outputs
from gatelab.history import History

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)


def series(history: History, dataset: Dataset) -> dict[str, np.ndarray]:
    """What the chapter prints as training goes, for every step (0-based) as MLflow metrics.

    One row: its `output` and `error` (`y - output`) at each step, before that step's update.
    A table: each epoch's `error_sum`, the sum of `y - output` over its rows as each is trained.
    """
    errors = dataset.targets[:, 0] - history.outputs
    if len(dataset.inputs) == 1:
        return {"output": history.outputs[:, 0], "error": errors[:, 0]}
    return {"error_sum": errors.sum(axis=1)}


def chapter_report(
    history: History,
    dataset: Dataset,
    model: "keras.Model",
    *,
    print_every: int,
    **_: object,
) -> None:
    """The chapter's console: what its loops print, then its outputs per row and `w`, `b`."""
    printed = series(history, dataset)
    if len(dataset.inputs) == 1:
        log.info("output before training: %r", float(history.outputs[0, 0]))
    if print_every > 0:
        for step in range(print_every - 1, len(history.loss), print_every):
            values = [
                float(printed[key][step])
                for key in ("error", "output", "error_sum")
                if key in printed
            ]
            log.info("%d %s", step, " ".join(repr(value) for value in values))
    outputs = np.asarray(float64_outputs(model, dataset.inputs))
    for inputs, target, output in zip(dataset.inputs, dataset.targets, outputs, strict=True):
        log.info("X: %s Y: %s Output: %r", _integers(inputs), _integers(target), float(output[0]))
    for layer in model.layers:
        prefix = f"{layer.name} " if len(model.layers) > 1 else ""
        for weight, letter in zip(layer.weights, ("w", "b"), strict=False):
            log.info("%s%s: %s", prefix, letter, _float32s(weight.numpy().ravel()))


def show_draws(drawn: dict[str, np.ndarray]) -> None:
    """The chapter's first cells' random tensors, as it prints them."""
    for name, values in drawn.items():
        log.info("%s: %s", name, _float32s(values.ravel()))


def _integers(values: np.ndarray) -> str:
    # The chapter's inputs and targets are integer arrays: `[1 1]`, `[0]`.
    return "[" + " ".join(f"{value:g}" for value in values) + "]"


def _float32s(values: np.ndarray) -> str:
    # As NumPy prints a float32 array, without its column padding: [-0.6980922 -1.2426192].
    return "[" + " ".join(str(np.float32(value)) for value in values) + "]"


def report(
    history: History,
    dataset: Dataset,
    outputs: np.ndarray,
    model: "keras.Model",
    metrics: dict[str, float],
    *,
    print_every: int,
    epochs: int,
) -> None:
    """The default console: losses as training went, predictions, weights, the outcome."""
    if print_every > 0:
        for epoch in range(print_every, len(history.loss) + 1, print_every):
            log.info("epoch %d/%d  loss %.6f", epoch, epochs, history.loss[epoch - 1])
    if history.diverged:
        log.warning("loss became %s at epoch %d: stopped", history.loss[-1], len(history.loss))
    log.info("predictions:\n%s", predictions_table(dataset, outputs))
    log.info("weights:\n%s", weights_text(model))
    log.info("accuracy %.2f, epochs_to_solve %s", metrics["accuracy"], history.epochs_to_solve)


@dataclass(frozen=True)
class Console:
    """What a run prints as it trains, and the per-step series it needs recorded and logs."""

    report: Callable[..., None]
    series: Callable[[History, Dataset], dict[str, np.ndarray]] | None = None


# `trainer.report` chooses one.
CONSOLES = {
    "default": Console(report=report),
    "chapter": Console(report=chapter_report, series=series),
}


def model_summary(model: "keras.Model") -> str:
    lines = io.StringIO()
    model.summary(print_fn=lambda line, line_break=True: lines.write(line + "\n"))
    return lines.getvalue()


def predictions_table(dataset: Dataset, outputs: np.ndarray) -> str:
    cells = [" ".join(f"{value:g}" for value in inputs) for inputs in dataset.inputs]
    width = max(len("inputs"), *map(len, cells)) + 2
    rows = ["inputs".ljust(width) + "target  output"]
    for cell, target, output in zip(cells, dataset.targets, outputs, strict=True):
        rows.append(f"{cell:{width}}{target[0]:<8g}{output[0]:.4f}")
    return "\n".join(rows)


def weights_text(model: "keras.Model") -> str:
    return "\n".join(
        f"{weight.path}: {np.array2string(weight.numpy(), precision=4)}" for weight in model.weights
    )
