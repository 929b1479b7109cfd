"""The population engine: K copies of one network trained side by side in one compiled program.

Each member is the run `single.train` would make for its seed, learning rate and momentum:
the same initial weights (Keras's initializers, drawn as the builder draws them after
`keras.utils.set_random_seed(seed)`), the same row order every epoch (`batching.epoch_orders`),
the same loss, Dense maths and SGD update. The weights of all members are stacked, `[K, ...]`,
and every step is one batched matmul per layer; an epoch's losses and `solved` are recorded per
member, and a member whose loss stops being finite stops updating while the others go on.
Epochs run in chunks so that Ctrl-C/SIGTERM is acted on between two chunks, and so that the
row orders on the host never exceed a chunk (not K x epochs x rows); batches, row orders and
chunk timing are `batching`'s, as the single loop's.
"""

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gatelab import stopping
from gatelab.engine.backend import keras, tf
from gatelab.engine.batching import EpochOrders, batches, next_chunk_epochs
from gatelab.engine.schedule import Schedule
from gatelab.history import SOLVED_THRESHOLD, History

# Row indices of one chunk for all members: 4 million int32 (16 MB) at most.
ROWS_PER_CHUNK = 4_000_000
FIRST_CHUNK_EPOCHS = 50
# Options of keras.optimizers.SGD the engine implements; any other non-default one falls back.
SGD_OPTIONS = ("learning_rate", "momentum", "nesterov")


@dataclass(frozen=True)
class Member:
    """One job of a population: what differs from its siblings."""

    seed: int
    learning_rate: float
    momentum: float = 0.0


@dataclass(frozen=True)
class PopulationHistory:
    """Per member: loss and `solved` of every epoch (NaN/False after it stopped), final state."""

    loss: np.ndarray  # [K, epochs]
    solved: np.ndarray  # [K, epochs]
    epochs_run: np.ndarray  # [K]
    weights: list[np.ndarray]  # model.weights order, each [K, ...]
    outputs: np.ndarray  # [K, rows, 1]

    def member(self, index: int) -> History:
        """Member `index`'s history, as `single.train` returns it for the same run."""
        epochs = int(self.epochs_run[index])
        return History(loss=self.loss[index, :epochs], solved=self.solved[index, :epochs])


def unsupported_reason(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> str | None:
    """Why this model and optimizer cannot be trained as a population, or None if they can."""
    for layer in model.layers:
        if type(layer) is not keras.layers.Dense:
            return f"layer {layer.name} is a {type(layer).__name__}, not Dense"
        if layer.kernel_regularizer or layer.bias_regularizer or layer.activity_regularizer:
            return f"layer {layer.name} has a regularizer"
        if layer.kernel_constraint or layer.bias_constraint or layer.lora_enabled:
            return f"layer {layer.name} has a constraint or LoRA"
        for initializer in (layer.kernel_initializer, layer.bias_initializer):
            # The chapter's draws come from TensorFlow's global generator, one member at a time.
            if not type(initializer).__module__.startswith("keras."):
                return f"layer {layer.name} draws with {type(initializer).__name__}"
    if type(optimizer) is not keras.optimizers.SGD:
        return f"optimizer {type(optimizer).__name__} (the population engine implements SGD)"
    defaults = keras.optimizers.SGD().get_config()
    changed = [
        key
        for key, value in optimizer.get_config().items()
        if key not in (*SGD_OPTIONS, "name") and value != defaults.get(key)
    ]
    if changed:
        return f"SGD option {', '.join(changed)} (the population engine implements {SGD_OPTIONS})"
    return None


def initial_weights(model: keras.Model, seeds: list[int]) -> list[np.ndarray]:
    """Each seed's initial weights, stacked: what the model's builder draws for that seed.

    `keras.utils.set_random_seed(seed)` seeds Python's `random`, from which every Keras
    initializer takes its own integer seed when it is created (a Dense layer creates its
    kernel's, then its bias's, in layer order); the draw itself is stateless, a function of
    that integer. So the integers come from `random.seed(seed)` and fresh initializers in that
    order, and each initializer then draws for all members in one compiled call.
    """
    saved_state = random.getstate()
    member_seeds = []
    try:
        for seed in seeds:
            random.seed(seed)
            fresh = [_fresh(initializer) for initializer, _ in _initializers(model)]
            member_seeds.append([getattr(initializer, "seed", None) for initializer in fresh])
    finally:
        random.setstate(saved_state)
    values = []
    for position, (initializer, variable) in enumerate(_initializers(model)):
        if variable is None:
            continue
        column = [row[position] for row in member_seeds]
        if all(isinstance(seed, int) for seed in column):
            values.append(_draw(initializer, variable, column))
        else:
            # Not seeded from Python's random (zeros, ones, a constant): the same for everyone.
            value = np.asarray(_fresh(initializer)(variable.shape, dtype=variable.dtype))
            values.append(np.broadcast_to(value, (len(seeds), *value.shape)).copy())
    return values


def _initializers(model: keras.Model) -> list[tuple[keras.initializers.Initializer, object]]:
    """Each Dense layer's initializers in the order it creates them, with the weight they fill."""
    return [
        pair
        for layer in model.layers
        for pair in (
            (layer.kernel_initializer, layer.kernel),
            (layer.bias_initializer, layer.bias if layer.use_bias else None),
        )
    ]


def _fresh(initializer: keras.initializers.Initializer) -> keras.initializers.Initializer:
    # The config keeps the seed the user gave (None unless set), so a fresh copy draws its own.
    return initializer.__class__.from_config(initializer.get_config())


class _GivenSeed(keras.random.SeedGenerator):
    """The seed tensor Keras draws from an integer seed, handed to an initializer in a map."""

    def __init__(self, seed: tf.Tensor):  # no state variable: nothing is drawn from it
        self.seed = seed

    def next(self, ordered: bool = True) -> tf.Tensor:
        return self.seed


def _draw(initializer: keras.initializers.Initializer, variable, seeds: list[int]) -> np.ndarray:
    """`initializer` with each integer seed, as `keras.random` turns one into `[seed, 0]`."""
    seed_pairs = tf.constant([[seed, 0] for seed in seeds], tf.int64)
    return _drawing(initializer, tuple(variable.shape), variable.dtype)(seed_pairs).numpy()


# The compiled draw of each initializer (its class and config) and weight shape: a search's
# batches draw their members' weights without tracing it again (0.3-0.5 s a batch a weight).
_DRAWINGS: dict[tuple, Callable] = {}


def _drawing(initializer: keras.initializers.Initializer, shape: tuple, dtype: str) -> Callable:
    config = json.dumps(initializer.get_config(), sort_keys=True, default=str)
    key = (type(initializer), config, shape, dtype)
    if key not in _DRAWINGS:

        def draw_one(seed: tf.Tensor) -> tf.Tensor:
            member_initializer = _fresh(initializer)
            member_initializer.seed = _GivenSeed(seed)
            return member_initializer(shape, dtype=dtype)

        _DRAWINGS[key] = tf.function(
            lambda pairs: tf.map_fn(draw_one, pairs, fn_output_signature=tf.float32),
            input_signature=[tf.TensorSpec([None, 2], tf.int64)],
        )
    return _DRAWINGS[key]


def train_population(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    members: list[Member],
    x: np.ndarray,
    y: np.ndarray,
    schedule: Schedule,
    *,
    chunk_epochs: int | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> PopulationHistory:
    """Train one copy of `model` per member, as `single.train` would train each alone.

    Args:
        model: a built model of the population's structure; its own weights are not used.
        optimizer: the SGD the members share but for learning rate and momentum.
        chunk_epochs: epochs per call of the compiled program; None sizes each call to take
            about CHUNK_SECONDS (at most ROWS_PER_CHUNK row indices on the host).
        on_chunk: called with the number of epochs trained so far after every chunk.
    """
    reason = unsupported_reason(model, optimizer)
    if reason is not None:
        raise ValueError(f"this model and optimizer cannot train as a population: {reason}")
    count = len(members)
    n_rows, epochs = len(x), schedule.epochs
    cut = batches(n_rows, schedule.batch_size)
    steps, batch_size = cut.steps, cut.batch_size
    adaptive = chunk_epochs is None
    if adaptive:
        chunk_epochs = max(1, min(epochs, ROWS_PER_CHUNK // (count * steps * batch_size)))

    seeds = [member.seed for member in members]
    weights = [tf.Variable(value) for value in initial_weights(model, seeds)]
    velocities = [tf.Variable(tf.zeros_like(value)) for value in weights]
    active = tf.Variable(tf.ones([count], tf.bool))
    learning_rates = tf.constant([member.learning_rate for member in members], tf.float32)
    momentums = tf.constant([member.momentum for member in members], tf.float32)
    program = _program(model, schedule.loss, bool(optimizer.nesterov), schedule.jit_compile)

    losses = np.full((count, epochs), np.nan, np.float32)
    solved = np.zeros((count, epochs), bool)
    epochs_run = np.zeros(count, np.int64)
    x_tensor, y_tensor = tf.constant(x, tf.float32), tf.constant(y, tf.float32)
    weights_tensor = tf.constant(cut.row_weights())
    orders_of = EpochOrders(seeds, n_rows, schedule.shuffle)
    # The program is compiled for chunks of `capacity` epochs and told how many to run: each
    # call is sized to take about CHUNK_SECONDS, so a signal waits at most that long.
    capacity = chunk_epochs
    trained = min(capacity, FIRST_CHUNK_EPOCHS) if adaptive else capacity
    start = 0
    while start < epochs and active.numpy().any():
        trained = min(trained, epochs - start)
        # Padded to the compiled shape: epochs past `trained` are never run.
        padded = np.zeros((count, capacity, steps, batch_size), np.int32)
        padded[:, :trained] = cut.pad(orders_of.take(trained))
        was_active = active.numpy()
        call_started = time.perf_counter()
        chunk_losses, chunk_solved = program(
            x_tensor,
            y_tensor,
            tf.constant(padded),
            weights_tensor,
            tf.constant(trained),
            learning_rates,
            momentums,
            weights,
            velocities,
            active,
        )
        chunk_losses = chunk_losses.numpy()[:trained].T
        chunk_solved = chunk_solved.numpy()[:trained].T
        seconds = time.perf_counter() - call_started
        ran = _epochs_ran(was_active, chunk_losses)
        mask = np.arange(trained)[None, :] < ran[:, None]
        losses[:, start : start + trained] = np.where(mask, chunk_losses, np.nan)
        solved[:, start : start + trained] = mask & chunk_solved
        epochs_run += ran
        start += trained
        if on_chunk is not None:
            on_chunk(start)
        stopping.check()
        if adaptive and start > trained:  # the first call also compiled: not a measure
            trained = next_chunk_epochs(trained, seconds, capacity)
    final_weights = [value.numpy() for value in weights]
    outputs = _forward(_layers(model), weights, tf.broadcast_to(x_tensor, [count, *x.shape]))
    return PopulationHistory(losses, solved, epochs_run, final_weights, outputs.numpy())


def _epochs_ran(was_active: np.ndarray, chunk_losses: np.ndarray) -> np.ndarray:
    """Epochs each member trained in a chunk: up to and including its first non-finite loss."""
    non_finite = ~np.isfinite(chunk_losses)
    first = np.where(non_finite.any(axis=1), non_finite.argmax(axis=1) + 1, chunk_losses.shape[1])
    return np.where(was_active, first, 0)


@dataclass(frozen=True)
class _Layer:
    activation: Callable
    use_bias: bool


def _layers(model: keras.Model) -> list[_Layer]:
    return [_Layer(layer.activation, layer.use_bias) for layer in model.layers]


def _forward(layers: list[_Layer], weights, inputs):
    """Every member's Dense stack at once: inputs [K, rows, n_inputs] to outputs [K, rows, 1]."""
    hidden = inputs
    index = 0
    for layer in layers:
        hidden = tf.matmul(hidden, weights[index])
        index += 1
        if layer.use_bias:
            hidden = hidden + weights[index][:, None, :]
            index += 1
        hidden = layer.activation(hidden)
    return hidden


_PROGRAMS: dict[tuple, tf.types.experimental.PolymorphicFunction] = {}


def _program(model: keras.Model, loss: str, nesterov: bool, jit_compile: bool):
    """The compiled chunk of epochs for this structure, traced once per shape."""
    layers = _layers(model)
    key = (tuple((layer.activation.__name__, layer.use_bias) for layer in layers), loss, nesterov)
    key += (jit_compile,)
    if key in _PROGRAMS:
        return _PROGRAMS[key]
    loss_function = keras.losses.get(loss)

    def run_chunk(x, y, orders, row_weights, epochs, learning_rates, momentums, *state):
        weights, velocities, active = state
        count = orders.shape[0]
        total_weight = tf.reduce_sum(row_weights)
        losses = tf.TensorArray(tf.float32, size=orders.shape[1], element_shape=[count])
        solved = tf.TensorArray(tf.bool, size=orders.shape[1], element_shape=[count])
        x_all = tf.broadcast_to(x, [count, *x.shape])
        epoch = tf.constant(0)
        while epoch < epochs and tf.reduce_any(active):
            weighted_loss = tf.zeros([count])
            for step in tf.range(orders.shape[2]):
                rows = orders[:, epoch, step]
                step_weights = row_weights[step]
                with tf.GradientTape() as tape:
                    tape.watch(weights)
                    outputs = _forward(layers, weights, tf.gather(x, rows))
                    per_row = loss_function(tf.gather(y, rows), outputs)
                    batch_loss = tf.reduce_sum(per_row * step_weights, axis=1) / tf.reduce_sum(
                        step_weights
                    )
                    # Members are independent: the sum's gradient is each member's own.
                    total_loss = tf.reduce_sum(batch_loss)
                gradients = tape.gradient(total_loss, weights)
                _sgd_step(
                    weights, velocities, gradients, active, learning_rates, momentums, nesterov
                )
                weighted_loss += batch_loss * tf.reduce_sum(step_weights)
            epoch_loss = weighted_loss / total_weight
            outputs_now = _forward(layers, weights, x_all)
            on_right_side = (outputs_now > SOLVED_THRESHOLD) == (y > SOLVED_THRESHOLD)
            losses = losses.write(epoch, epoch_loss)
            solved = solved.write(epoch, tf.reduce_all(on_right_side, axis=[1, 2]))
            active.assign(active & tf.math.is_finite(epoch_loss))
            epoch += 1
        return losses.stack(), solved.stack()

    _PROGRAMS[key] = tf.function(run_chunk, jit_compile=jit_compile)
    return _PROGRAMS[key]


def _sgd_step(weights, velocities, gradients, active, learning_rates, momentums, nesterov):
    """`keras.optimizers.SGD.update_step` for every active member, each with its own rates."""
    for weight, velocity, gradient in zip(weights, velocities, gradients, strict=True):
        shape = [-1] + [1] * (len(weight.shape) - 1)
        learning_rate = tf.reshape(learning_rates, shape)
        momentum = tf.reshape(momentums, shape)
        member_active = tf.reshape(active, shape)
        # Keras skips the velocity when momentum is 0: w - g * lr, the same floats as here.
        new_velocity = velocity * momentum - gradient * learning_rate
        step = new_velocity * momentum - gradient * learning_rate if nesterov else new_velocity
        plain = weight - gradient * learning_rate
        new_weight = tf.where(momentum != 0, weight + step, plain)
        velocity.assign(tf.where(member_active, new_velocity, velocity))
        weight.assign(tf.where(member_active, new_weight, weight))
