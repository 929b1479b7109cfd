"""Keras's names of activations and initializers, as tables: checking a config must not import
Keras, which imports TensorFlow (5 s). Tests keep both tables equal to Keras's own.
"""

# keras.activations' names.
ACTIVATIONS = (
    "celu",
    "elu",
    "exponential",
    "gelu",
    "glu",
    "hard_shrink",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "leaky_relu",
    "linear",
    "log_sigmoid",
    "log_softmax",
    "mish",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "soft_shrink",
    "softmax",
    "softplus",
    "softsign",
    "sparse_plus",
    "sparse_sigmoid",
    "sparsemax",
    "squareplus",
    "swish",
    "tanh",
    "tanh_shrink",
    "threshold",
)

# The arguments an initializer may be given (the fields of `InitializerConfig` after its name).
INITIALIZER_ARGUMENTS = ("mean", "stddev", "minval", "maxval", "value", "seed")
# Initializer names and which of those arguments each takes: Keras's (its snake_case names;
# tests keep this table equal to Keras's signatures) and ours (`gatelab.engine.models`).
INITIALIZERS = {
    "glorot_uniform": ("seed",),
    "glorot_normal": ("seed",),
    "he_uniform": ("seed",),
    "he_normal": ("seed",),
    "lecun_uniform": ("seed",),
    "lecun_normal": ("seed",),
    "orthogonal": ("seed",),
    "variance_scaling": ("seed",),
    "random_normal": ("mean", "stddev", "seed"),
    "truncated_normal": ("mean", "stddev", "seed"),
    "random_uniform": ("minval", "maxval", "seed"),
    "constant": ("value",),
    "zeros": (),
    "ones": (),
    "identity": (),
    "chapter_normal": ("mean", "stddev", "seed"),
    "chapter_uniform": ("minval", "maxval", "seed"),
}
