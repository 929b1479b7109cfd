"""The book's own console (`trainer.report=chapter`) and its first cells' random draws.

The chapter prints, for one row, `step error output` every 100 steps; for a table, the epoch's
`error_sum` every 200 epochs; and at the end `X: [1 1] Y: [1] Output: 0.9643550986660553` per
row and the weights `w`, `b`. Its step numbers are 0-based (`for i in range(1000)`, printed
when `i % 100 == 99`), its outputs are Python floats: the float32 pre-activation through a
float64 sigmoid (`1 / (1 + math.exp(-z))`), so this console prints them the same way.
"""

import logging

import numpy as np

from gatelab.backend import keras, tf
from gatelab.data import Dataset
from gatelab.history import History
from gatelab.models import Initializer, float64_outputs

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


def report(
    history: History,
    dataset: Dataset,
    model: keras.Model,
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
    outputs = float64_outputs(model, tf.constant(dataset.inputs)).numpy()
    for inputs, target, output in zip(dataset.inputs, dataset.targets, outputs, strict=True):
        log.info("X: %s Y: %s Output: %r", _integers(inputs), _integers(target), float(output[0]))
    for layer in model.layers:
        prefix = f"{layer.name} " if len(model.layers) > 1 else ""
        for weight, letter in zip(layer.weights, ("w", "b"), strict=False):
            log.info("%s%s: %s", prefix, letter, _float32s(weight.numpy().ravel()))


def draw(draws: dict[str, tuple[list[int], Initializer]]) -> dict[str, np.ndarray]:
    """Each named tensor, `(shape, initializer)`, drawn in order, as the chapter's first cells."""
    drawn = {}
    for name, (shape, initializer) in draws.items():
        drawn[name] = np.asarray(keras.initializers.get(initializer)(shape))
        log.info("%s: %s", name, _float32s(drawn[name].ravel()))
    return drawn


def _integers(values: np.ndarray) -> str:
    # The chapter's inputs and targets are integer arrays: `[1 1]`, `[0]`.
    return "[" + " ".join(f"{value:g}" for value in values) + "]"


def _float32s(values: np.ndarray) -> str:
    # As NumPy prints a float32 array, without its column padding: [-0.6980922 -1.2426192].
    return "[" + " ".join(str(np.float32(value)) for value in values) + "]"
