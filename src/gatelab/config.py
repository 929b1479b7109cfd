"""Schemas of every config group option, registered in Hydra's ConfigStore, and their checks.

OmegaConf rejects unknown keys and wrong types as a config is composed; keys added with `+`
and `_target_` values are checked here against the schemas, and each schema's `__post_init__`
rejects values its type allows but training does not (a negative or infinite learning rate,
zero epochs, a model too large for memory). `validate` runs those checks once, before any
training or tracking, and without importing TensorFlow.
Values live in one place, the YAML files of conf/: here a field is MISSING, which its file sets.
"""

import dataclasses
import difflib
import math
from dataclasses import dataclass, field, fields
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gatelab.data import GATES, MAX_INPUTS, ORDERS

LOSSES = ("mse", "binary_crossentropy")
# The console: `default` (losses, predictions, weights) or `chapter` (what the book prints).
REPORTS = ("default", "chapter")
# Training holds every epoch's row order in memory at once: 10 million rows is 40 MB of it.
MAX_ROWS_TRAINED = 10_000_000
# The chapter's networks have 2 to 9 parameters. A million float32 weights are 4 MB; training
# holds about eight copies (weights, gradients, two Adam slots, each twice: the model and the
# compiled loop's template), and a step at batch size 1 still takes about a millisecond.
MAX_PARAMETERS = 1_000_000
# Every epoch runs the model on the whole dataset (to record whether it is solved): rows x units
# float32 activations, kept again for the gradient. 10 million of them are 40 MB.
MAX_ACTIVATIONS = 10_000_000
# Each layer is traced and compiled; a hundred compile in seconds.
MAX_HIDDEN_LAYERS = 100
# The metric `loss` is bounded (tracking.max_loss_points); 100,000 points take SQLite a few seconds.
MAX_LOSS_POINTS = 100_000
# MLflow's SQL stores hold an experiment name in 256 characters (its API allows 500).
MAX_EXPERIMENT_NAME_LENGTH = 256
# keras.activations' names (tests/test_config.py keeps this list equal to Keras's): checking a
# name must not import Keras, which imports TensorFlow (5 s).
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


class ConfigError(ValueError):
    """A value training cannot use; the message is one line: field, value, what is allowed."""


def _require(condition: bool, field_name: str, value: Any, allowed: str) -> None:
    if not condition:
        raise ConfigError(f"{field_name}={shorten(repr(value))} is not allowed: {allowed}")


def shorten(text: str, limit: int = 120) -> str:
    """A value as given, cut to fit on one line of an error message."""
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text):,} characters)"


def _require_activation(field_name: str, name: str) -> None:
    _require(
        name in ACTIVATIONS,
        field_name,
        name,
        "use a Keras activation name such as sigmoid, relu, tanh" + _did_you_mean(name),
    )


def _is_number(value: Any) -> bool:
    """A finite int or float: NaN or infinity in a dataset would train to a NaN loss."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _did_you_mean(activation: str) -> str:
    close = difflib.get_close_matches(activation, ACTIVATIONS, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


@dataclass
class TruthTableConfig:
    _target_: str = "gatelab.data.truth_table"
    gate: str = MISSING
    n_inputs: int = MISSING
    order: str = MISSING

    def __post_init__(self) -> None:
        _require(self.gate in GATES, "dataset.gate", self.gate, f"one of {', '.join(GATES)}")
        _require(self.order in ORDERS, "dataset.order", self.order, f"one of {', '.join(ORDERS)}")
        _require(
            1 <= self.n_inputs <= MAX_INPUTS,
            "dataset.n_inputs",
            self.n_inputs,
            f"from 1 to {MAX_INPUTS} (a truth table has 2**n_inputs rows)",
        )

    @property
    def n_rows(self) -> int:
        return 2**self.n_inputs


@dataclass
class CustomDatasetConfig:
    _target_: str = "gatelab.data.from_lists"
    # Any, not float: OmegaConf would refuse the integers of `dataset.inputs=[[0],[1]]`.
    inputs: list[Any] = MISSING
    targets: list[Any] = MISSING

    def __post_init__(self) -> None:
        rows_of_numbers = all(
            isinstance(row, list) and row and all(_is_number(value) for value in row)
            for row in self.inputs
        )
        _require(
            len(self.inputs) > 0
            and rows_of_numbers
            and len({len(row) for row in self.inputs}) == 1,
            "dataset.inputs",
            self.inputs,
            "a list of rows of finite numbers, all of one length, e.g. [[0],[1]]",
        )
        _require(
            all(_is_number(target) for target in self.targets),
            "dataset.targets",
            self.targets,
            "a list of finite numbers, e.g. [0,1]",
        )
        _require(
            len(self.targets) == len(self.inputs),
            "dataset.targets",
            self.targets,
            f"one target per input row ({len(self.inputs)})",
        )
        _require(
            all(0 <= target <= 1 for target in self.targets),
            "dataset.targets",
            self.targets,
            "values from 0 to 1 (a sigmoid output is compared with them)",
        )

    @property
    def n_rows(self) -> int:
        return len(self.inputs)

    @property
    def n_inputs(self) -> int:
        return len(self.inputs[0])


@dataclass
class InitializerConfig:
    """A Keras initializer by name, with the arguments it takes; None keeps Keras's default."""

    _target_: str = "gatelab.models.initializer"
    name: str = MISSING
    mean: float | None = None
    stddev: float | None = None
    minval: float | None = None
    maxval: float | None = None
    value: float | None = None
    seed: int | None = None


INITIALIZER_ARGUMENTS = [item.name for item in fields(InitializerConfig)][2:]


# Initializer names and which of InitializerConfig's arguments each takes: Keras's (its
# snake_case names; tests/test_models.py keeps this table equal to Keras's signatures) and ours
# (gatelab.models). A table, not Keras itself: checking a config must not import TensorFlow.
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


def _require_initializer(field_name: str, config: InitializerConfig) -> None:
    _require(
        config.name in INITIALIZERS,
        f"{field_name}.name",
        config.name,
        f"one of {', '.join(INITIALIZERS)}",
    )
    takes = INITIALIZERS[config.name]
    for name in INITIALIZER_ARGUMENTS:
        value = getattr(config, name)
        _require(
            value is None or name in takes,
            f"{field_name}.{name}",
            value,
            f"{config.name} takes {', '.join(takes) or 'no arguments'}",
        )


@dataclass
class PerceptronConfig:
    _target_: str = "gatelab.models.build_perceptron"
    use_bias: bool = MISSING
    activation: str = MISSING
    kernel_initializer: InitializerConfig = MISSING
    bias_initializer: InitializerConfig = MISSING

    def __post_init__(self) -> None:
        _require_activation("model.activation", self.activation)
        _require_initializer("model.kernel_initializer", self.kernel_initializer)
        _require_initializer("model.bias_initializer", self.bias_initializer)

    def check_size(self, n_inputs: int, n_rows: int) -> None:
        """One unit of at most 17 weights: always small enough."""


@dataclass
class MLPConfig:
    _target_: str = "gatelab.models.build_mlp"
    hidden_units: list[int] = MISSING
    activation: str = MISSING
    output_activation: str = MISSING
    use_bias: bool = MISSING
    kernel_initializer: InitializerConfig = MISSING
    bias_initializer: InitializerConfig = MISSING

    def __post_init__(self) -> None:
        _require(
            len(self.hidden_units) > 0 and all(units >= 1 for units in self.hidden_units),
            "model.hidden_units",
            list(self.hidden_units),
            "a non-empty list of layer sizes, each at least 1, e.g. [2]",
        )
        if len(self.hidden_units) > MAX_HIDDEN_LAYERS:
            raise ConfigError(
                f"model.hidden_units has {len(self.hidden_units)} layers: "
                f"at most {MAX_HIDDEN_LAYERS} are allowed"
            )
        _require_activation("model.activation", self.activation)
        _require_activation("model.output_activation", self.output_activation)
        _require_initializer("model.kernel_initializer", self.kernel_initializer)
        _require_initializer("model.bias_initializer", self.bias_initializer)

    def parameter_count(self, n_inputs: int) -> int:
        sizes = [n_inputs, *self.hidden_units, 1]
        bias = int(self.use_bias)
        layers = zip(sizes[:-1], sizes[1:], strict=True)
        return sum((fan_in + bias) * fan_out for fan_in, fan_out in layers)

    def check_size(self, n_inputs: int, n_rows: int) -> None:
        """Refuse a network too large for memory before TensorFlow allocates it."""
        parameters = self.parameter_count(n_inputs)
        _require(
            parameters <= MAX_PARAMETERS,
            "model.hidden_units",
            list(self.hidden_units),
            f"{parameters:,} parameters for {n_inputs} inputs, at most {MAX_PARAMETERS:,}; "
            "use fewer or smaller layers",
        )
        units = sum(self.hidden_units) + 1
        _require(
            n_rows * units <= MAX_ACTIVATIONS,
            "model.hidden_units",
            list(self.hidden_units),
            f"{units:,} units on {n_rows:,} rows; rows x units at most {MAX_ACTIVATIONS:,}, "
            f"so at most {MAX_ACTIVATIONS // n_rows:,} units in all for this dataset",
        )


def _require_learning_rate(learning_rate: float) -> None:
    _require(
        0 < learning_rate < math.inf,
        "optimizer.learning_rate",
        learning_rate,
        "a finite number greater than 0, e.g. 0.1",
    )


@dataclass
class SGDConfig:
    _target_: str = "keras.optimizers.SGD"
    learning_rate: float = MISSING
    momentum: float = MISSING
    nesterov: bool = MISSING

    def __post_init__(self) -> None:
        _require_learning_rate(self.learning_rate)
        _require(
            0 <= self.momentum < 1, "optimizer.momentum", self.momentum, "from 0 up to (not) 1"
        )


@dataclass
class AdamConfig:
    _target_: str = "keras.optimizers.Adam"
    learning_rate: float = MISSING
    beta_1: float = MISSING
    beta_2: float = MISSING
    epsilon: float = MISSING
    amsgrad: bool = MISSING

    def __post_init__(self) -> None:
        _require_learning_rate(self.learning_rate)
        for name in ("beta_1", "beta_2"):
            value = getattr(self, name)
            _require(0 <= value < 1, f"optimizer.{name}", value, "from 0 up to (not) 1")
        _require(
            0 < self.epsilon < math.inf,
            "optimizer.epsilon",
            self.epsilon,
            "a finite number greater than 0",
        )


@dataclass
class TrainerConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    shuffle: bool = MISSING
    loss: str = MISSING
    print_every: int = MISSING
    jit_compile: bool = MISSING
    report: str = MISSING

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, "trainer.epochs", self.epochs, "an integer of at least 1")
        _require(
            self.batch_size >= 1, "trainer.batch_size", self.batch_size, "an integer of at least 1"
        )
        _require(self.loss in LOSSES, "trainer.loss", self.loss, f"one of {', '.join(LOSSES)}")
        _require(
            self.print_every >= 0,
            "trainer.print_every",
            self.print_every,
            "an integer of at least 0 (0 prints no epoch losses)",
        )
        _require(
            self.report in REPORTS, "trainer.report", self.report, f"one of {', '.join(REPORTS)}"
        )


@dataclass
class TrackingConfig:
    # None keeps MLflow's own choice: MLFLOW_TRACKING_URI if set, else sqlite:///mlflow.db here.
    uri: str | None = MISSING
    experiment: str = MISSING
    # Per run: the Keras model (MLflow's keras flavor) and the PNG loss curve. A vectorized
    # sweep turns both off; any of its jobs re-run alone logs them.
    log_model: bool = MISSING
    log_figures: bool = MISSING
    # The metric `loss` gets at most this many points (every epoch's loss is in loss.csv).
    max_loss_points: int = MISSING

    def __post_init__(self) -> None:
        _require(
            self.experiment.strip() != ""
            and len(self.experiment) <= MAX_EXPERIMENT_NAME_LENGTH
            and self.experiment.isprintable(),
            "tracking.experiment",
            self.experiment,
            f"a name of 1 to {MAX_EXPERIMENT_NAME_LENGTH} printable characters, e.g. gatelab",
        )
        _require(
            0 <= self.max_loss_points <= MAX_LOSS_POINTS,
            "tracking.max_loss_points",
            self.max_loss_points,
            f"an integer from 0 (final loss only) to {MAX_LOSS_POINTS:,}",
        )


@dataclass
class DrawConfig:
    """A tensor of `shape` drawn by an initializer, as the chapter's first cells draw them."""

    shape: list[int] = MISSING
    initializer: InitializerConfig = MISSING


@dataclass
class Config:
    dataset: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    trainer: TrainerConfig = MISSING
    tracking: TrackingConfig = MISSING
    seed: int = MISSING
    # Named tensors to draw instead of training (`+experiment=book/random`); empty: train.
    draws: dict[str, DrawConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(0 <= self.seed < 2**32, "seed", self.seed, "an integer from 0 to 2**32 - 1")
        for name, draw in self.draws.items():
            _require(
                all(size >= 1 for size in draw.shape),
                f"draws.{name}.shape",
                list(draw.shape),
                "a list of sizes, each at least 1, e.g. [4]",
            )
            _require_initializer(f"draws.{name}.initializer", draw.initializer)
        rows = self.dataset.n_rows
        _require(
            self.trainer.epochs * rows <= MAX_ROWS_TRAINED,
            "trainer.epochs",
            self.trainer.epochs,
            f"at most {MAX_ROWS_TRAINED // rows:,} for a dataset of {rows:,} rows "
            f"(epochs x rows at most {MAX_ROWS_TRAINED:,}); lower one of them",
        )
        self.model.check_size(self.dataset.n_inputs, rows)


def register_configs() -> None:
    """Store every schema under the name its YAML file extends (`base_<option>`)."""
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    store.store(group="dataset", name="base_truth_table", node=TruthTableConfig)
    store.store(group="dataset", name="base_custom", node=CustomDatasetConfig)
    store.store(group="model", name="base_perceptron", node=PerceptronConfig)
    store.store(group="model", name="base_mlp", node=MLPConfig)
    store.store(group="optimizer", name="base_sgd", node=SGDConfig)
    store.store(group="optimizer", name="base_adam", node=AdamConfig)
    store.store(group="trainer", name="base_trainer", node=TrainerConfig)


def unknown_key_message(full_key: str, allowed: list[str]) -> str:
    """One line for a key no schema has: the nearest valid key first, then all of them."""
    section, _, key = full_key.rpartition(".")
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean {section + '.' if section else ''}{close[0]}? " if close else ""
    return (
        f"{full_key} is not a field of {section or 'the config'}: "
        f"{hint}allowed fields are {', '.join(allowed)}"
    )


def check_keys(cfg: DictConfig) -> None:
    """Refuse keys no schema declares, even added with `+`, and every `_target_` but the schemas'.

    OmegaConf lets `+trainer.epoch=10` into a typed node and `to_object` then drops it silently;
    a `_target_` is code Hydra would run, so only the factories the schemas name are allowed.
    """
    _check_node(cfg, cfg._get_full_key(None))


def _check_node(node: Any, path: str) -> None:
    if isinstance(node, ListConfig):
        if not (node._is_none() or node._is_missing()):
            for index in range(len(node)):
                _check_node(node._get_node(index), f"{path}[{index}]")
        return
    if not isinstance(node, DictConfig) or node._is_none() or node._is_missing():
        return
    schema = OmegaConf.get_type(node)
    fields = (
        {field.name: field for field in dataclasses.fields(schema)}
        if dataclasses.is_dataclass(schema)
        else {}
    )
    for key in node:
        full_key = f"{path}.{key}" if path else str(key)
        if path == "" and key == "hydra":
            continue  # Hydra's own node, in the config a sweep callback sees.
        if key == "_target_":
            if "_target_" not in fields:
                raise ConfigError(
                    f"{full_key} is not allowed: only the project's own factories are "
                    "instantiated, through the schemas that name them"
                )
            _check_target(node, full_key, fields["_target_"].default)
        elif fields and key not in fields:
            allowed = [name for name in fields if not name.startswith("_")]
            raise ConfigError(unknown_key_message(full_key, allowed))
        _check_node(node._get_node(key), full_key)


def _check_target(node: DictConfig, full_key: str, default: str) -> None:
    value = node._get_node("_target_")._value()
    if value != default:
        raise ConfigError(
            f"{full_key}={shorten(repr(value))} is not allowed: the option chosen sets it "
            f"({default}); choose another option of the group ({full_key.split('.')[0]}=...)"
        )


def validate(cfg: DictConfig) -> None:
    """Run every schema's checks on the composed config (or one of its nodes); raise ConfigError
    at the first failure."""
    check_keys(cfg)
    try:
        OmegaConf.to_object(cfg)
    except Exception as error:
        # OmegaConf wraps what __post_init__ raised; the user needs only our one line.
        config_error = _find_config_error(error)
        if config_error is not None:
            raise config_error from None
        if isinstance(error, OmegaConfBaseException) and error.full_key:
            # Found only when resolved, such as an interpolation of a key that does not exist.
            reason = str(error.msg or error).splitlines()[0]
            raise ConfigError(f"{error.full_key} is not allowed: {reason}") from None
        raise


def _find_config_error(error: BaseException | None) -> ConfigError | None:
    while error is not None and not isinstance(error, ConfigError):
        error = error.__cause__ or error.__context__
    return error
