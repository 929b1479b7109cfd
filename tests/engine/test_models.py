"""The Keras builders in the Keras manner: parameter counts and outputs with hand-set weights."""

import inspect

import numpy as np
import pytest

from gatelab.config.keras_names import INITIALIZER_ARGUMENTS, INITIALIZERS
from gatelab.data import truth_table
from gatelab.engine.backend import keras, tf
from gatelab.engine.models import (
    build_mlp,
    build_perceptron,
    float64_outputs,
    initializer,
    initializer_class,
)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_mlp_is_the_chapters_2_2_1_with_nine_parameters():
    model = build_mlp(n_inputs=2, hidden_units=[2])
    assert model.count_params() == 9
    assert [layer.units for layer in model.layers] == [2, 1]
    assert model.output_shape == (None, 1)


@pytest.mark.parametrize(
    ("n_inputs", "hidden_units", "expected"),
    [(3, [4], 3 * 4 + 4 + 4 + 1), (2, [3, 2], 2 * 3 + 3 + 3 * 2 + 2 + 2 + 1)],
)
def test_mlp_parameter_count(n_inputs, hidden_units, expected):
    assert build_mlp(n_inputs=n_inputs, hidden_units=hidden_units).count_params() == expected


def test_perceptron_parameters_with_and_without_bias():
    assert build_perceptron(n_inputs=2).count_params() == 3
    assert build_perceptron(n_inputs=1, use_bias=False).count_params() == 1


def test_perceptron_output_with_hand_set_weights():
    model = build_perceptron(n_inputs=2)
    kernel, bias = np.array([[2.0], [-1.0]]), np.array([0.5])
    model.set_weights([kernel, bias])
    inputs = truth_table("and", 2).inputs
    np.testing.assert_allclose(
        np.asarray(model(inputs)), sigmoid(inputs @ kernel + bias), rtol=1e-6
    )


def test_mlp_with_hand_set_weights_computes_xor():
    # Hidden units: OR and NAND; output: their AND. Large weights make sigmoid a step.
    model = build_mlp(n_inputs=2, hidden_units=[2])
    hidden_kernel = np.array([[20.0, -20.0], [20.0, -20.0]])
    hidden_bias = np.array([-10.0, 30.0])
    output_kernel = np.array([[20.0], [20.0]])
    output_bias = np.array([-30.0])
    model.set_weights([hidden_kernel, hidden_bias, output_kernel, output_bias])
    dataset = truth_table("xor", 2)
    outputs = np.asarray(model(dataset.inputs))
    hidden = sigmoid(dataset.inputs @ hidden_kernel + hidden_bias)
    np.testing.assert_allclose(outputs, sigmoid(hidden @ output_kernel + output_bias), rtol=1e-5)
    np.testing.assert_array_equal(outputs > 0.5, dataset.targets > 0.5)


def test_layers_have_stable_names_for_the_weights_artifact():
    model = build_mlp(n_inputs=2, hidden_units=[2, 2])
    assert [layer.name for layer in model.layers] == ["hidden_1", "hidden_2", "output"]


def test_default_initializers_draw_what_dense_draws_by_default():
    # The config's defaults (`glorot_uniform`, `zeros`) must not change any seed's start.
    keras.utils.set_random_seed(126)
    by_name = build_mlp(2, [2], kernel_initializer="glorot_uniform", bias_initializer="zeros")
    keras.utils.set_random_seed(126)
    configured = build_mlp(
        2,
        [2],
        kernel_initializer=initializer("glorot_uniform"),
        bias_initializer=initializer("zeros"),
    )
    for expected, weight in zip(by_name.get_weights(), configured.get_weights(), strict=True):
        np.testing.assert_array_equal(weight, expected)


def test_hand_set_constant_initializers_give_the_sigmoid_of_the_weighted_sum():
    model = build_perceptron(
        n_inputs=2,
        kernel_initializer=initializer("constant", value=0.5),
        bias_initializer=initializer("constant", value=-1.0),
    )
    assert model.count_params() == 3
    inputs = truth_table("and", 2).inputs
    np.testing.assert_allclose(
        np.asarray(model(inputs)), sigmoid(inputs @ np.full((2, 1), 0.5) - 1.0), rtol=1e-6
    )


def test_initializer_arguments_reach_keras():
    model = build_mlp(
        n_inputs=3,
        hidden_units=[64],
        kernel_initializer=initializer("random_normal", mean=5.0, stddev=0.01),
    )
    assert model.count_params() == 3 * 64 + 64 + 64 + 1
    kernel = model.get_layer("hidden_1").kernel.numpy()
    assert abs(kernel.mean() - 5.0) < 0.01
    assert kernel.std() < 0.02
    # Each layer draws its own values.
    assert not np.allclose(model.get_layer("output").kernel.numpy()[:3, 0], kernel[:3, 0])


def test_chapter_normal_is_tf_random_normal_after_set_seed():
    tf.random.set_seed(126)
    expected_w, expected_b = tf.random.normal([2], 0, 1), tf.random.normal([1], 0, 1)
    model = build_perceptron(
        n_inputs=2,
        kernel_initializer=initializer("chapter_normal", mean=0.0, stddev=1.0, seed=126),
        # No seed: continues TensorFlow's global stream, as the chapter's `b` after its `w`.
        bias_initializer=initializer("chapter_normal", mean=0.0, stddev=1.0),
    )
    kernel, bias = model.get_weights()
    np.testing.assert_array_equal(kernel[:, 0], expected_w.numpy())
    np.testing.assert_array_equal(bias, expected_b.numpy())
    np.testing.assert_allclose(kernel[:, 0], [-0.6980922, -1.2426192])


def test_float64_outputs_resolve_what_float32_rounds_to_one_half():
    model = build_perceptron(
        n_inputs=1,
        kernel_initializer=initializer("constant", value=-3.6e-9),
        use_bias=False,
    )
    inputs = np.array([[1.0]], np.float32)
    assert np.asarray(model(inputs))[0, 0] == 0.5
    (output,) = float64_outputs(model, inputs).numpy()[0]
    assert output == pytest.approx(sigmoid(np.float64(np.float32(-3.6e-9))), abs=1e-15)
    assert output < 0.5


def test_the_configs_initializer_table_is_keras_own():
    # config.py checks names and arguments without importing Keras, from a table.
    for name, takes in INITIALIZERS.items():
        parameters = inspect.signature(initializer_class(name).__init__).parameters
        assert tuple(argument for argument in INITIALIZER_ARGUMENTS if argument in parameters) == (
            takes
        ), name
        assert isinstance(keras.initializers.get(initializer(name)), keras.initializers.Initializer)
