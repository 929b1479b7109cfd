"""The compiled engine trains exactly as Keras `fit` does, faster, and reproducibly."""

import keras
import numpy as np
import pytest

from gatelab.data import from_lists, truth_table
from gatelab.engine import single
from gatelab.engine.batching import epoch_orders
from gatelab.engine.models import build_mlp, build_perceptron
from gatelab.engine.schedule import Schedule
from gatelab.history import History

XOR = truth_table("xor", 2)


def fresh_mlp(seed: int = 126) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return build_mlp(n_inputs=2, hidden_units=[2])


def train(model, optimizer=None, dataset=XOR, **overrides) -> History:
    settings = dict(loss="mse", epochs=30, batch_size=1, shuffle=False, jit_compile=True)
    settings |= overrides
    seed = settings.pop("seed", 0)
    extras = {
        key: settings.pop(key) for key in ("record_outputs", "snapshot_epochs") if key in settings
    }
    optimizer = optimizer or keras.optimizers.SGD(learning_rate=0.1)
    return single.train(
        model, optimizer, dataset.inputs, dataset.targets, Schedule(**settings), seed=seed, **extras
    )


@pytest.mark.parametrize(
    ("optimizer_class", "loss", "batch_size", "jit_compile"),
    [
        (keras.optimizers.SGD, "mse", 1, True),
        (keras.optimizers.SGD, "mse", 1, False),
        (keras.optimizers.Adam, "binary_crossentropy", 1, True),
        # Three rows a batch leaves a short last batch of one.
        (keras.optimizers.SGD, "mse", 3, True),
    ],
)
def test_losses_and_weights_equal_keras_fit(optimizer_class, loss, batch_size, jit_compile):
    ours, theirs = fresh_mlp(), fresh_mlp()
    theirs.set_weights(ours.get_weights())
    theirs.compile(optimizer=optimizer_class(learning_rate=0.1), loss=loss)
    fit_history = theirs.fit(
        XOR.inputs, XOR.targets, epochs=20, batch_size=batch_size, shuffle=False, verbose=0
    )

    history = train(
        ours,
        optimizer_class(learning_rate=0.1),
        loss=loss,
        epochs=20,
        batch_size=batch_size,
        jit_compile=jit_compile,
    )

    np.testing.assert_allclose(history.loss, fit_history.history["loss"], atol=1e-5)
    for our_weight, their_weight in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(our_weight, their_weight, atol=1e-5)


def test_one_step_of_the_chapters_rule_is_one_sgd_step_on_binary_crossentropy():
    # The chapter: output = sigmoid(x . w + b); w <- w + lr * x * (y - output).
    learning_rate = 0.5
    keras.utils.set_random_seed(3)
    model = build_perceptron(n_inputs=2)
    kernel, bias = (weight.copy() for weight in model.get_weights())
    x, y = np.array([1.0, 1.0], np.float32), 1.0
    output = 1 / (1 + np.exp(-(x @ kernel[:, 0] + bias[0])))
    expected_kernel = kernel[:, 0] + learning_rate * x * (y - output)
    expected_bias = bias[0] + learning_rate * (y - output)

    train(
        model,
        keras.optimizers.SGD(learning_rate=learning_rate),
        dataset=from_lists([x.tolist()], [y]),
        loss="binary_crossentropy",
        epochs=1,
    )

    new_kernel, new_bias = model.get_weights()
    np.testing.assert_allclose(new_kernel[:, 0], expected_kernel, rtol=1e-5)
    np.testing.assert_allclose(new_bias[0], expected_bias, rtol=1e-5)
    assert not np.allclose(new_kernel, kernel)


def test_shuffle_is_a_new_order_every_epoch_and_repeats_with_the_seed():
    orders = epoch_orders(n_rows=4, epochs=50, shuffle=True, seed=7)
    assert all(sorted(order) == [0, 1, 2, 3] for order in orders)
    assert len({tuple(order) for order in orders}) > 1
    np.testing.assert_array_equal(orders, epoch_orders(4, 50, True, seed=7))
    assert not np.array_equal(orders, epoch_orders(4, 50, True, seed=8))


def test_same_seed_same_config_gives_identical_loss_history():
    first = train(fresh_mlp(), shuffle=True, seed=5, epochs=100)
    second = train(fresh_mlp(), shuffle=True, seed=5, epochs=100)
    unshuffled = train(fresh_mlp(), shuffle=False, seed=5, epochs=100)
    np.testing.assert_array_equal(first.loss, second.loss)
    assert not np.array_equal(first.loss, unshuffled.loss)


def test_a_later_run_of_the_same_shapes_reuses_the_compiled_function_with_its_learning_rate():
    initial = fresh_mlp().get_weights()

    def model_at_start() -> keras.Model:
        model = fresh_mlp()
        model.set_weights(initial)
        return model

    epochs = 30
    low_rate = train(model_at_start(), keras.optimizers.SGD(learning_rate=0.1), epochs=epochs)
    traces = single.tracing_count()
    model = model_at_start()
    high_rate = train(model, keras.optimizers.SGD(learning_rate=0.7), epochs=epochs)
    assert single.tracing_count() == traces
    # Same start and shapes, so only the learning rate can make the two runs differ.
    assert not np.allclose(high_rate.loss, low_rate.loss, atol=1e-3)

    # The reused function trained exactly as Keras does at the new rate, not at the traced one.
    reference = model_at_start()
    reference.compile(optimizer=keras.optimizers.SGD(learning_rate=0.7), loss="mse")
    fit_history = reference.fit(
        XOR.inputs, XOR.targets, epochs=epochs, batch_size=1, shuffle=False, verbose=0
    )
    np.testing.assert_allclose(high_rate.loss, fit_history.history["loss"], atol=1e-5)
    for our_weight, their_weight in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(our_weight, their_weight, atol=1e-5)


def test_reused_function_gives_the_same_result_as_a_first_trace():
    keras.utils.set_random_seed(11)
    model = build_mlp(n_inputs=2, hidden_units=[2])
    initial = model.get_weights()
    first = train(model, epochs=25, shuffle=True, seed=4)
    train(fresh_mlp(9), keras.optimizers.SGD(learning_rate=0.9), epochs=25)
    model.set_weights(initial)
    again = train(model, epochs=25, shuffle=True, seed=4)
    np.testing.assert_array_equal(first.loss, again.loss)


def test_a_diverging_run_stops_at_the_first_non_finite_loss():
    # Sigmoids saturate and keep the loss finite; a linear network overflows.
    keras.utils.set_random_seed(0)
    linear = build_mlp(
        n_inputs=2, hidden_units=[2], activation="linear", output_activation="linear"
    )
    history = train(linear, keras.optimizers.SGD(learning_rate=1e6), epochs=500)
    assert history.diverged
    assert len(history.loss) < 500
    assert np.all(np.isfinite(history.loss[:-1]))


def test_epochs_to_solve_is_the_first_epoch_with_every_output_on_the_right_side():
    history = train(
        build_perceptron(n_inputs=2),
        dataset=truth_table("and", 2),
        epochs=300,
        loss="binary_crossentropy",
    )
    assert history.epochs_to_solve is not None
    assert history.solved[history.epochs_to_solve - 1]
    assert not history.solved[: history.epochs_to_solve - 1].any()
    assert History(loss=np.ones(3), solved=np.zeros(3, bool)).epochs_to_solve is None


@pytest.mark.parametrize("batch_size", [1, 3])
def test_recorded_outputs_are_each_rows_output_before_the_step_that_trains_it(batch_size):
    # The chapter prints, at step i, the output it computed before step i's update.
    dataset = truth_table("and", 2, order="chapter")
    keras.utils.set_random_seed(4)
    model = build_perceptron(n_inputs=2)
    kernel, bias = (weight.astype(np.float64) for weight in model.get_weights())
    history = train(
        model,
        dataset=dataset,
        loss="binary_crossentropy",
        epochs=3,
        batch_size=batch_size,
        shuffle=True,
        seed=1,
        record_outputs=True,
    )
    # The same 3 epochs by hand, in the same row orders.
    expected = np.empty((3, 4))
    for epoch, order in enumerate(epoch_orders(4, 3, shuffle=True, seed=1)):
        for start in range(0, 4, batch_size):
            rows = order[start : start + batch_size]
            outputs = 1 / (1 + np.exp(-(dataset.inputs[rows] @ kernel + bias)))
            expected[epoch, rows] = outputs[:, 0]
            errors = dataset.targets[rows] - outputs
            kernel += 0.1 * dataset.inputs[rows].T @ errors / len(rows)
            bias += 0.1 * errors.mean(axis=0)
    np.testing.assert_allclose(history.outputs, expected, rtol=1e-5)


def test_recording_outputs_does_not_change_training():
    recorded = train(fresh_mlp(), record_outputs=True, epochs=50)
    plain = train(fresh_mlp(), epochs=50)
    np.testing.assert_array_equal(recorded.loss, plain.loss)
    assert plain.outputs is None
    assert recorded.outputs.shape == (50, 4)


def test_recorded_outputs_are_the_same_in_chunks_of_epochs(monkeypatch):
    whole = train(fresh_mlp(), record_outputs=True, shuffle=True, epochs=7)
    monkeypatch.setattr(single, "MAX_CHUNK_EPOCHS", 3)
    chunked = train(fresh_mlp(), record_outputs=True, shuffle=True, epochs=7)
    np.testing.assert_array_equal(chunked.outputs, whole.outputs)
    assert chunked.outputs.shape == (7, 4)


def test_snapshots_are_the_weights_after_the_requested_epochs_and_change_nothing():
    dataset = truth_table("xor")

    def trained(epochs: int, snapshot_epochs: list[int]):
        keras.utils.set_random_seed(3)
        model = build_mlp(2, [2])
        history = single.train(
            model,
            keras.optimizers.SGD(0.5),
            dataset.inputs,
            dataset.targets,
            Schedule(loss="mse", epochs=epochs, batch_size=1, shuffle=True),
            seed=3,
            snapshot_epochs=snapshot_epochs,
        )
        return model, history

    model, history = trained(30, [10, 30])
    short_model, short_history = trained(10, [])
    assert list(history.snapshots) == [10, 30]
    assert short_history.snapshots == {}
    for snapshot, weight in zip(history.snapshots[10], short_model.weights, strict=True):
        np.testing.assert_array_equal(snapshot, weight.numpy())
    for snapshot, weight in zip(history.snapshots[30], model.weights, strict=True):
        np.testing.assert_array_equal(snapshot, weight.numpy())
    np.testing.assert_array_equal(history.loss[:10], short_history.loss)


@pytest.mark.parametrize("max_chunk_epochs", [1, 3])
@pytest.mark.parametrize(
    ("optimizer_class", "learning_rate", "loss", "batch_size", "activation"),
    [
        (keras.optimizers.SGD, 0.3, "mse", 1, "sigmoid"),
        # Adam's moments and step count carry over from one chunk to the next.
        (keras.optimizers.Adam, 0.3, "binary_crossentropy", 3, "sigmoid"),
        # Diverges at epoch 4: in the middle of a chunk of 3, at the end of a chunk of 1.
        (keras.optimizers.SGD, 0.26, "mse", 1, "linear"),
    ],
)
def test_training_in_chunks_of_epochs_is_bit_identical_to_one_call(
    monkeypatch, max_chunk_epochs, optimizer_class, learning_rate, loss, batch_size, activation
):
    # Between chunks a stop signal is acted on; chunking must not change a single bit.
    keras.utils.set_random_seed(3)
    initial = build_mlp(
        n_inputs=2, hidden_units=[2], activation=activation, output_activation=activation
    )

    def run() -> tuple[History, list[np.ndarray]]:
        model = keras.models.clone_model(initial)
        model.set_weights(initial.get_weights())
        settings = dict(loss=loss, batch_size=batch_size, shuffle=True, seed=2, epochs=30)
        history = train(model, optimizer_class(learning_rate=learning_rate), **settings)
        return history, model.get_weights()

    whole, whole_weights = run()
    monkeypatch.setattr(single, "MAX_CHUNK_EPOCHS", max_chunk_epochs)
    chunked, chunked_weights = run()

    assert len(whole.loss) == (4 if activation == "linear" else 30)
    np.testing.assert_array_equal(chunked.loss, whole.loss)
    np.testing.assert_array_equal(chunked.solved, whole.solved)
    for chunked_weight, whole_weight in zip(chunked_weights, whole_weights, strict=True):
        np.testing.assert_array_equal(chunked_weight, whole_weight)
