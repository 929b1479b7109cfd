"""Keras builders for the chapter's networks (one sigmoid unit, a small MLP) and their maths."""

import inspect
from typing import Any

import numpy as np

from gatelab.engine.backend import keras, tf
from gatelab.plane import GRID_POINTS, BoundaryView, plane_grid

# What Keras's `Dense` accepts as `kernel_initializer`/`bias_initializer`: a name, a config dict
# or an initializer object.
Initializer = str | dict[str, Any] | keras.initializers.Initializer


@keras.saving.register_keras_serializable(package="gatelab")
class ChapterNormal(keras.initializers.Initializer):
    """The chapter's draws: `tf.random.normal(shape, mean, stddev)` after `set_seed(seed)`.

    Keras's `RandomNormal` draws from its own seeded generator; the chapter draws from
    TensorFlow's global one. `seed=None` continues that generator where the last draw left it
    (the chapter's AND cell draws `w` and then `b` after one `set_seed`).
    """

    def __init__(self, mean: float = 0.0, stddev: float = 1.0, seed: int | None = None):
        self.mean = mean
        self.stddev = stddev
        self.seed = seed

    def __call__(self, shape, dtype=None):
        if self.seed is not None:
            tf.random.set_seed(self.seed)
        return tf.random.normal(shape, self.mean, self.stddev, dtype=dtype or "float32")

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


@keras.saving.register_keras_serializable(package="gatelab")
class ChapterUniform(keras.initializers.Initializer):
    """`tf.random.uniform(shape, minval, maxval)` after `set_seed(seed)`, as `ChapterNormal`."""

    def __init__(self, minval: float = 0.0, maxval: float = 1.0, seed: int | None = None):
        self.minval = minval
        self.maxval = maxval
        self.seed = seed

    def __call__(self, shape, dtype=None):
        if self.seed is not None:
            tf.random.set_seed(self.seed)
        return tf.random.uniform(shape, self.minval, self.maxval, dtype=dtype or "float32")

    def get_config(self) -> dict[str, Any]:
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


# Our own initializer names, beside Keras's (`glorot_uniform`, `zeros`, `random_normal`, ...).
OWN_INITIALIZERS = {"chapter_normal": ChapterNormal, "chapter_uniform": ChapterUniform}


def initializer_class(name: str) -> type:
    """The initializer class of a Keras name (`glorot_uniform`, `random_normal`) or of ours."""
    if name in OWN_INITIALIZERS:
        return OWN_INITIALIZERS[name]
    # Keras's names are its classes' (`RandomNormal`) and their snake_case (`random_normal`).
    class_name = "".join(part[:1].upper() + part[1:] for part in name.split("_"))
    found = getattr(keras.initializers, class_name, None)
    initializers = keras.initializers.Initializer
    if not (isinstance(found, type) and issubclass(found, initializers) and found != initializers):
        raise ValueError(f"not a Keras initializer: {name}")
    return found


def initializer(name: str, **arguments: Any) -> dict[str, Any]:
    """A Keras initializer by name and arguments, as the config dict every `Dense` layer accepts.

    Arguments left None take the initializer's own defaults. A dict rather than an object: each
    layer makes its own initializer from it as it is built, as from Keras's default names, so
    `glorot_uniform` draws exactly what `Dense`'s default draws.
    """
    initializer = initializer_class(name)
    given = {key: value for key, value in arguments.items() if value is not None}
    # Every argument spelled out: Keras's `Constant.from_config` needs `value` even at its default.
    config = inspect.signature(initializer).bind(**given)
    config.apply_defaults()
    return {"class_name": keras.saving.get_registered_name(initializer), "config": config.arguments}


def build_perceptron(
    n_inputs: int,
    use_bias: bool = True,
    activation: str = "sigmoid",
    kernel_initializer: Initializer = "glorot_uniform",
    bias_initializer: Initializer = "zeros",
) -> keras.Model:
    """One dense unit: the chapter's neuron when `n_inputs` is 1, its AND/OR perceptron at 2."""
    return keras.Sequential(
        [
            keras.Input(shape=(n_inputs,), name="inputs"),
            keras.layers.Dense(
                1,
                activation=activation,
                use_bias=use_bias,
                kernel_initializer=kernel_initializer,
                bias_initializer=bias_initializer,
                name="output",
            ),
        ],
        name="perceptron",
    )


def build_mlp(
    n_inputs: int,
    hidden_units: list[int],
    activation: str = "sigmoid",
    output_activation: str = "sigmoid",
    use_bias: bool = True,
    kernel_initializer: Initializer = "glorot_uniform",
    bias_initializer: Initializer = "zeros",
) -> keras.Model:
    """Dense hidden layers of `hidden_units` and one output unit; `[2]` is the chapter's 2-2-1."""
    initializers = {"kernel_initializer": kernel_initializer, "bias_initializer": bias_initializer}
    hidden_layers = [
        keras.layers.Dense(
            units, activation=activation, use_bias=use_bias, name=f"hidden_{i}", **initializers
        )
        for i, units in enumerate(hidden_units, start=1)
    ]
    return keras.Sequential(
        [
            keras.Input(shape=(n_inputs,), name="inputs"),
            *hidden_layers,
            keras.layers.Dense(
                1, activation=output_activation, use_bias=use_bias, name="output", **initializers
            ),
        ],
        name="mlp",
    )


def float64_outputs(model: keras.Model, x: np.ndarray | tf.Tensor) -> tf.Tensor:
    """The model's outputs, its last activation applied in float64 to its float32 pre-activation.

    So the chapter computes its outputs: `1 / (1 + math.exp(-z))` in Python floats, for a `z`
    summed in float32. Near 0.5 that resolves 0.4999999991, which float32 rounds to 0.5.
    """
    *hidden_layers, output_layer = model.layers
    for layer in hidden_layers:
        x = layer(x)
    pre_activation = tf.matmul(x, output_layer.kernel)
    if output_layer.use_bias:
        pre_activation += output_layer.bias
    return output_layer.activation(tf.cast(pre_activation, tf.float64))


def boundary_view(model: keras.Model, weights: list[np.ndarray] | None = None) -> BoundaryView:
    """What `model` (or the same layers holding `weights`) computes over the input plane."""
    if weights is None:
        weights = [weight.numpy() for weight in model.weights]
    # The Dense layers' sums and activations in NumPy: a copy of the model with these weights
    # (`clone_model`) took 10 ms each, a tenth of a per-job sweep's job for its eight pictures.
    values = iter(weights)
    outputs = plane_grid()
    for layer in model.layers:
        kernel = next(values)
        bias = next(values) if layer.use_bias else 0.0
        outputs = np.asarray(layer.activation(outputs @ kernel + bias))
    hidden_lines = np.zeros((0, 3))
    if len(model.layers) > 1:
        kernel = weights[0]
        bias = weights[1] if model.layers[0].use_bias else np.zeros(kernel.shape[1])
        hidden_lines = np.column_stack([kernel.T, bias])
    return BoundaryView(
        outputs=outputs[:, 0].reshape(GRID_POINTS, GRID_POINTS), hidden_lines=hidden_lines
    )


def draw_tensors(draws: dict[str, tuple[list[int], Initializer]]) -> dict[str, np.ndarray]:
    """Each named tensor, `(shape, initializer)`, drawn in order, as the chapter's first cells."""
    return {
        name: np.asarray(keras.initializers.get(initializer)(shape))
        for name, (shape, initializer) in draws.items()
    }


def reset(seed: int) -> None:
    """A clean Keras state seeded with `seed`, as each job of a sweep starts from."""
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(seed)


def layer_weights(model: keras.Model) -> list[tuple[str, list[str]]]:
    """Each layer's name and the names of its weights, in `model.weights` order."""
    return [(layer.name, [weight.name for weight in layer.weights]) for layer in model.layers]
