"""One run's training: every epoch and step inside a compiled `tf.function`, in chunks of epochs.

Keras `fit` pays Python and callback overhead on every one of the chapter's 8000 tiny steps;
here the loop runs in XLA-compiled calls of many epochs each (the chapter's whole run is one).
Python regains control only between calls, which is where Ctrl-C or SIGTERM stops training, so
a call is sized to take about `batching.CHUNK_SECONDS`. The compiled function is cached at
module level by the shapes it was traced for, and runs on template copies of the model and
optimizer whose variables are loaded before and read back after each run, so later runs of the same
shapes in one process (a sweep) reuse it without tracing again and share no state.
"""

import dataclasses
import json
import time
from collections.abc import Sequence

import numpy as np

from gatelab.engine.backend import keras, tf
from gatelab.engine.batching import batches, epoch_orders, next_chunk_epochs
from gatelab.engine.models import float64_outputs
from gatelab.engine.schedule import Schedule
from gatelab.history import SOLVED_THRESHOLD, History

# Epochs one call of the compiled loop can run (the shape it is compiled for); it runs fewer
# when they would take longer than CHUNK_SECONDS, so that a stop signal is acted on quickly.
MAX_CHUNK_EPOCHS = 100_000
# The first call's epochs come from an estimate of a step's cost, in weights touched: a step
# costs about as much as BATCH_STEP_OVERHEAD weights more, and FIRST_CHUNK_WEIGHT_STEPS of them
# take well under CHUNK_SECONDS on one core. Later calls are sized by the time the last took.
BATCH_STEP_OVERHEAD = 1000
FIRST_CHUNK_WEIGHT_STEPS = 100_000_000
# How many epochs' weights one run can keep (for `boundary_epochs.png`).
MAX_SNAPSHOTS = 8


def train(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    x: np.ndarray,
    y: np.ndarray,
    schedule: Schedule,
    *,
    seed: int,
    record_outputs: bool = False,
    snapshot_epochs: Sequence[int] = (),
) -> History:
    """Train `model` in place as `model.fit(x, y, batch_size, epochs, shuffle)` would.

    Args:
        record_outputs: also keep each row's output at the step that trains it, before that
            step's update, as the chapter's loops print it (`History.outputs`).
        snapshot_epochs: epochs (1-based, at most `MAX_SNAPSHOTS`) after which the weights are
            copied into `History.snapshots`, for pictures of how the model formed.
    """
    if len(snapshot_epochs) > MAX_SNAPSHOTS:
        raise ValueError(f"snapshot_epochs: at most {MAX_SNAPSHOTS}, not {len(snapshot_epochs)}")
    # An epoch's loss is the mean of its batch losses weighted by batch size, as Keras reports
    # it; training stops early at the first epoch whose loss is NaN or infinite.
    n_rows, epochs = len(x), schedule.epochs
    cut = batches(n_rows, schedule.batch_size)
    steps, batch_size = cut.steps, cut.batch_size
    orders = cut.pad(epoch_orders(n_rows, epochs, schedule.shuffle, seed))
    chunk_epochs = min(epochs, MAX_CHUNK_EPOCHS)

    optimizer.build(model.trainable_variables)
    loop = _compiled_loop(
        model,
        optimizer,
        schedule.loss,
        x.shape,
        chunk_epochs,
        steps,
        batch_size,
        schedule.jit_compile,
        record_outputs,
    )
    loop.load_from(model, optimizer)
    inputs = tf.constant(x, tf.float32)
    targets = tf.constant(y, tf.float32)
    weights = tf.constant(cut.row_weights())
    weight_steps = steps * (BATCH_STEP_OVERHEAD + batch_size * model.count_params())
    count = max(1, min(chunk_epochs, FIRST_CHUNK_WEIGHT_STEPS // weight_steps))
    losses, solved, step_outputs = [], [], []
    snapshots: dict[int, list[np.ndarray]] = {}
    shapes = [tuple(weight.shape) for weight in model.weights]
    start = 0
    while start < epochs:
        count = min(count, epochs - start)
        began = time.perf_counter()
        chunk_orders = orders[start : start + chunk_epochs]
        if len(chunk_orders) < chunk_epochs:
            # The last chunk, padded to the compiled shape; its padding is never trained on.
            missing = chunk_epochs - len(chunk_orders)
            chunk_orders = np.pad(chunk_orders, ((0, missing), (0, 0), (0, 0)))
        # This chunk's requested epochs, counted from its start; 0 (the padding) never matches.
        wanted = [
            epoch - start for epoch in sorted(snapshot_epochs) if start < epoch <= start + count
        ]
        chunk_losses, chunk_solved, epochs_run, chunk_outputs, snapshot_rows, taken = loop.function(
            inputs,
            targets,
            tf.constant(chunk_orders),
            weights,
            tf.constant(count, tf.int32),
            tf.constant(np.pad(wanted, (0, MAX_SNAPSHOTS - len(wanted))), tf.int32),
        )
        epochs_run = int(epochs_run)
        losses.append(chunk_losses.numpy()[:epochs_run])
        solved.append(chunk_solved.numpy()[:epochs_run])
        step_outputs.append(chunk_outputs.numpy()[:epochs_run])
        for epoch, row in zip(wanted, snapshot_rows.numpy()[: int(taken)], strict=False):
            snapshots[start + epoch] = _unflatten(row, shapes)
        start += epochs_run
        if not np.isfinite(losses[-1][-1]):  # diverged: stopped at this epoch
            break
        count = next_chunk_epochs(count, time.perf_counter() - began, chunk_epochs)
    loop.copy_back(model, optimizer)
    history = History(
        loss=np.concatenate(losses), solved=np.concatenate(solved), snapshots=snapshots
    )
    if record_outputs:
        # From the order rows were trained in back to the rows' own order; padding dropped.
        epochs_run = len(history.loss)
        visited = orders[:epochs_run].reshape(epochs_run, -1)[:, :n_rows]
        outputs = np.empty((epochs_run, n_rows))
        trained = np.concatenate(step_outputs).reshape(epochs_run, -1)[:, :n_rows]
        np.put_along_axis(outputs, visited, trained, axis=1)
        history = dataclasses.replace(history, outputs=outputs)
    return history


def _unflatten(row: np.ndarray, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    sizes = [int(np.prod(shape)) for shape in shapes]
    parts = np.split(row, np.cumsum(sizes)[:-1])
    return [part.reshape(shape) for part, shape in zip(parts, shapes, strict=True)]


class _CompiledLoop:
    """One traced training function and the template model and optimizer it updates."""

    def __init__(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        loss: str,
        jit_compile: bool,
        record_outputs: bool,
    ):
        self.record_outputs = record_outputs
        self.model = keras.models.clone_model(model)
        self.optimizer = optimizer.__class__.from_config(optimizer.get_config())
        self.optimizer.build(self.model.trainable_variables)
        self.loss_function = keras.losses.get(loss)
        self.function = tf.function(self._run, jit_compile=jit_compile)

    def load_from(self, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
        _copy_values(model.weights, self.model.weights)
        _copy_values(optimizer.variables, self.optimizer.variables)

    def copy_back(self, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
        _copy_values(self.model.weights, model.weights)
        _copy_values(self.optimizer.variables, optimizer.variables)

    def _run(self, x, y, orders, row_weights, epochs, snapshot_epochs):
        # `orders` holds a chunk's worth of epochs; the first `epochs` of them are run.
        chunk_epochs = orders.shape[0]
        losses = tf.TensorArray(tf.float32, size=chunk_epochs, element_shape=[])
        solved = tf.TensorArray(tf.bool, size=chunk_epochs, element_shape=[])
        # Recorded only when asked: an empty array otherwise, so the default loop does no more.
        outputs = tf.TensorArray(tf.float64, size=chunk_epochs if self.record_outputs else 0)
        epoch = tf.constant(0)
        epoch_loss = tf.constant(0.0)
        # Weights at the requested epochs, one flat row each: a where() per epoch, no branch.
        n_weights = sum(int(np.prod(weight.shape)) for weight in self.model.weights)
        snapshots = tf.zeros([MAX_SNAPSHOTS, n_weights])
        taken = tf.constant(0)
        while epoch < epochs and tf.math.is_finite(epoch_loss):
            epoch_loss, epoch_outputs = self._epoch(x, y, orders[epoch], row_weights)
            losses = losses.write(epoch, epoch_loss)
            solved = solved.write(epoch, self._all_on_right_side(x, y))
            if self.record_outputs:
                outputs = outputs.write(epoch, epoch_outputs)
            epoch += 1
            take = tf.logical_and(
                taken < MAX_SNAPSHOTS,
                epoch == snapshot_epochs[tf.minimum(taken, MAX_SNAPSHOTS - 1)],
            )
            row = tf.logical_and(take, tf.range(MAX_SNAPSHOTS) == taken)[:, None]
            flat = tf.concat([tf.reshape(weight, [-1]) for weight in self.model.weights], 0)
            snapshots = tf.where(row, flat[None, :], snapshots)
            taken += tf.cast(take, tf.int32)
        recorded = outputs.stack() if self.record_outputs else tf.zeros([0], tf.float64)
        return losses.stack(), solved.stack(), epoch, recorded, snapshots, taken

    def _epoch(self, x, y, batches, row_weights):
        weighted_loss = tf.constant(0.0)
        steps, batch_size = batches.shape
        outputs = tf.TensorArray(tf.float64, size=steps if self.record_outputs else 0)
        for step in tf.range(steps):
            weights = row_weights[step]
            x_batch = tf.gather(x, batches[step])
            y_batch = tf.gather(y, batches[step])
            if self.record_outputs:
                outputs = outputs.write(
                    step, tf.reshape(float64_outputs(self.model, x_batch), [-1])
                )
            with tf.GradientTape() as tape:
                per_row = self.loss_function(y_batch, self.model(x_batch, training=True))
                batch_loss = tf.reduce_sum(per_row * weights) / tf.reduce_sum(weights)
            gradients = tape.gradient(batch_loss, self.model.trainable_variables)
            self.optimizer.apply(gradients, self.model.trainable_variables)
            weighted_loss += batch_loss * tf.reduce_sum(weights)
        epoch_outputs = outputs.stack() if self.record_outputs else tf.zeros([steps, batch_size])
        return weighted_loss / tf.reduce_sum(row_weights), epoch_outputs

    def _all_on_right_side(self, x, y):
        return tf.reduce_all((self.model(x) > SOLVED_THRESHOLD) == (y > SOLVED_THRESHOLD))


_COMPILED_LOOPS: dict[str, _CompiledLoop] = {}


def _compiled_loop(
    model, optimizer, loss, x_shape, epochs, steps, batch_size, jit_compile, record_outputs
):
    """The cached loop for this structure and these shapes, created on first use."""
    optimizer_config = {
        key: value
        for key, value in optimizer.get_config().items()
        if key not in ("name", "learning_rate")
    }
    key = json.dumps(
        [
            _without_names(model.get_config()),
            type(optimizer).__name__,
            optimizer_config,
            loss,
            list(x_shape),
            epochs,
            steps,
            batch_size,
            jit_compile,
            record_outputs,
        ],
        sort_keys=True,
        default=str,
    )
    if key not in _COMPILED_LOOPS:
        _COMPILED_LOOPS[key] = _CompiledLoop(model, optimizer, loss, jit_compile, record_outputs)
    return _COMPILED_LOOPS[key]


def tracing_count() -> int:
    """How many times the cached training functions have been traced in this process."""
    return sum(loop.function.experimental_get_tracing_count() for loop in _COMPILED_LOOPS.values())


def _without_names(config):
    if isinstance(config, dict):
        return {key: _without_names(value) for key, value in config.items() if key != "name"}
    if isinstance(config, list):
        return [_without_names(value) for value in config]
    return config


def _copy_values(sources, targets) -> None:
    assert len(sources) == len(targets), "model or optimizer structure differs from its template"
    for source, target in zip(sources, targets, strict=True):
        target.assign(source)
