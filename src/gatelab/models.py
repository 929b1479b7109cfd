"""Keras builders for the chapter's networks: one sigmoid unit and a small MLP."""

from gatelab.backend import keras


def build_perceptron(
    n_inputs: int, use_bias: bool = True, activation: str = "sigmoid"
) -> keras.Model:
    """One dense unit: the chapter's neuron when `n_inputs` is 1, its AND/OR perceptron at 2."""
    return keras.Sequential(
        [
            keras.Input(shape=(n_inputs,), name="inputs"),
            keras.layers.Dense(1, activation=activation, use_bias=use_bias, name="output"),
        ],
        name="perceptron",
    )


def build_mlp(
    n_inputs: int,
    hidden_units: list[int],
    activation: str = "sigmoid",
    output_activation: str = "sigmoid",
    use_bias: bool = True,
) -> keras.Model:
    """Dense hidden layers of `hidden_units` and one output unit; `[2]` is the chapter's 2-2-1."""
    hidden_layers = [
        keras.layers.Dense(units, activation=activation, use_bias=use_bias, name=f"hidden_{i}")
        for i, units in enumerate(hidden_units, start=1)
    ]
    return keras.Sequential(
        [
            keras.Input(shape=(n_inputs,), name="inputs"),
            *hidden_layers,
            keras.layers.Dense(1, activation=output_activation, use_bias=use_bias, name="output"),
        ],
        name="mlp",
    )
