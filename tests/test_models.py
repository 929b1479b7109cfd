"""The Keras builders in the Keras manner: parameter counts and outputs with hand-set weights."""

import numpy as np
import pytest

from gatelab.data import truth_table
from gatelab.models import build_mlp, build_perceptron


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
