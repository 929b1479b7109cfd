"""A dataclass schema per config group option, stored in Hydra's ConfigStore as `base_<option>`.

Each schema's `__post_init__` refuses values its type allows but training does not (a negative
or infinite learning rate, zero epochs, a model too large for memory); `checks.validate` runs
them. Values live in one place, the YAML files of conf/: here a field is MISSING, which its
file sets.
"""

import difflib
import math
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from gatelab.config.checks import is_number, is_valid_tag, require
from gatelab.config.keras_names import ACTIVATIONS, INITIALIZER_ARGUMENTS, INITIALIZERS
from gatelab.data import GATES, MAX_INPUTS, ORDERS
from gatelab.errors import ConfigError

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


def _require_activation(field_name: str, name: str) -> None:
    close = difflib.get_close_matches(name, ACTIVATIONS, n=1)
    require(
        name in ACTIVATIONS,
        field_name,
        name,
        "use a Keras activation name such as sigmoid, relu, tanh"
        + (f" (did you mean {close[0]}?)" if close else ""),
    )


@dataclass
class TruthTableConfig:
    _target_: str = "gatelab.data.truth_table"
    gate: str = MISSING
    n_inputs: int = MISSING
    order: str = MISSING

    def __post_init__(self) -> None:
        require(self.gate in GATES, "dataset.gate", self.gate, f"one of {', '.join(GATES)}")
        require(self.order in ORDERS, "dataset.order", self.order, f"one of {', '.join(ORDERS)}")
        require(
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
            isinstance(row, list) and row and all(is_number(value) for value in row)
            for row in self.inputs
        )
        require(
            len(self.inputs) > 0
            and rows_of_numbers
            and len({len(row) for row in self.inputs}) == 1,
            "dataset.inputs",
            self.inputs,
            "a list of rows of finite numbers, all of one length, e.g. [[0],[1]]",
        )
        require(
            all(is_number(target) for target in self.targets),
            "dataset.targets",
            self.targets,
            "a list of finite numbers, e.g. [0,1]",
        )
        require(
            len(self.targets) == len(self.inputs),
            "dataset.targets",
            self.targets,
            f"one target per input row ({len(self.inputs)})",
        )
        require(
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

    _target_: str = "gatelab.engine.models.initializer"
    name: str = MISSING
    mean: float | None = None
    stddev: float | None = None
    minval: float | None = None
    maxval: float | None = None
    value: float | None = None
    seed: int | None = None


def _require_initializer(field_name: str, config: InitializerConfig) -> None:
    require(
        config.name in INITIALIZERS,
        f"{field_name}.name",
        config.name,
        f"one of {', '.join(INITIALIZERS)}",
    )
    takes = INITIALIZERS[config.name]
    for name in INITIALIZER_ARGUMENTS:
        value = getattr(config, name)
        require(
            value is None or name in takes,
            f"{field_name}.{name}",
            value,
            f"{config.name} takes {', '.join(takes) or 'no arguments'}",
        )


@dataclass
class PerceptronConfig:
    _target_: str = "gatelab.engine.models.build_perceptron"
    use_bias: bool = MISSING
    activation: str = MISSING
    kernel_initializer: InitializerConfig = MISSING
    bias_initializer: InitializerConfig = MISSING

    def __post_init__(self) -> None:
        _require_activation("model.activation", self.activation)
        _require_initializer("model.kernel_initializer", self.kernel_initializer)
        _require_initializer("model.bias_initializer", self.bias_initializer)

    def parameter_count(self, n_inputs: int) -> int:
        return n_inputs + int(self.use_bias)

    def check_size(self, n_inputs: int, n_rows: int) -> None:
        """One unit of at most 17 weights: always small enough."""


@dataclass
class MLPConfig:
    _target_: str = "gatelab.engine.models.build_mlp"
    hidden_units: list[int] = MISSING
    activation: str = MISSING
    output_activation: str = MISSING
    use_bias: bool = MISSING
    kernel_initializer: InitializerConfig = MISSING
    bias_initializer: InitializerConfig = MISSING

    def __post_init__(self) -> None:
        require(
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
        require(
            parameters <= MAX_PARAMETERS,
            "model.hidden_units",
            list(self.hidden_units),
            f"{parameters:,} parameters for {n_inputs} inputs, at most {MAX_PARAMETERS:,}; "
            "use fewer or smaller layers",
        )
        units = sum(self.hidden_units) + 1
        require(
            n_rows * units <= MAX_ACTIVATIONS,
            "model.hidden_units",
            list(self.hidden_units),
            f"{units:,} units on {n_rows:,} rows; rows x units at most {MAX_ACTIVATIONS:,}, "
            f"so at most {MAX_ACTIVATIONS // n_rows:,} units in all for this dataset",
        )


def _require_learning_rate(learning_rate: float) -> None:
    require(
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
        require(0 <= self.momentum < 1, "optimizer.momentum", self.momentum, "from 0 up to (not) 1")


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
            require(0 <= value < 1, f"optimizer.{name}", value, "from 0 up to (not) 1")
        require(
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
        require(self.epochs >= 1, "trainer.epochs", self.epochs, "an integer of at least 1")
        require(
            self.batch_size >= 1, "trainer.batch_size", self.batch_size, "an integer of at least 1"
        )
        require(self.loss in LOSSES, "trainer.loss", self.loss, f"one of {', '.join(LOSSES)}")
        require(
            self.print_every >= 0,
            "trainer.print_every",
            self.print_every,
            "an integer of at least 0 (0 prints no epoch losses)",
        )
        require(
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
    # A sweep of more jobs than this gets an experiment of its own (`<experiment> sweep <its
    # folder>`): the UI's runs table loads 100 runs a page, and would page the experiment's
    # other runs out of sight. None: every sweep in `experiment`.
    own_experiment_above: int | None = MISSING

    def __post_init__(self) -> None:
        require(
            self.experiment.strip() != ""
            and len(self.experiment) <= MAX_EXPERIMENT_NAME_LENGTH
            and self.experiment.isprintable(),
            "tracking.experiment",
            self.experiment,
            f"a name of 1 to {MAX_EXPERIMENT_NAME_LENGTH} printable characters, e.g. gatelab",
        )
        require(
            0 <= self.max_loss_points <= MAX_LOSS_POINTS,
            "tracking.max_loss_points",
            self.max_loss_points,
            f"an integer from 0 (final loss only) to {MAX_LOSS_POINTS:,}",
        )
        require(
            self.own_experiment_above is None or self.own_experiment_above >= 1,
            "tracking.own_experiment_above",
            self.own_experiment_above,
            "a number of jobs of at least 1, or null (every sweep in tracking.experiment)",
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
    tags: list[str] = MISSING
    # Named tensors to draw instead of training (`+experiment=book/random`); empty: train.
    draws: dict[str, DrawConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require(0 <= self.seed < 2**32, "seed", self.seed, "an integer from 0 to 2**32 - 1")
        require(
            all(is_valid_tag(tag) for tag in self.tags),
            "tags",
            list(self.tags),
            "names of letters, digits, _ - . / and spaces, or name:value, e.g. [baseline,team:ml]",
        )
        for name, draw in self.draws.items():
            require(
                all(size >= 1 for size in draw.shape),
                f"draws.{name}.shape",
                list(draw.shape),
                "a list of sizes, each at least 1, e.g. [4]",
            )
            _require_initializer(f"draws.{name}.initializer", draw.initializer)
        rows = self.dataset.n_rows
        require(
            self.trainer.epochs * rows <= MAX_ROWS_TRAINED,
            "trainer.epochs",
            self.trainer.epochs,
            f"at most {MAX_ROWS_TRAINED // rows:,} for a dataset of {rows:,} rows "
            f"(epochs x rows at most {MAX_ROWS_TRAINED:,}); lower one of them",
        )
        self.model.check_size(self.dataset.n_inputs, rows)


def register_configs() -> None:
    """Store every schema under the name its YAML file extends (`base_<option>`)."""
    config_store = ConfigStore.instance()
    config_store.store(name="base_config", node=Config)
    config_store.store(group="dataset", name="base_truth_table", node=TruthTableConfig)
    config_store.store(group="dataset", name="base_custom", node=CustomDatasetConfig)
    config_store.store(group="model", name="base_perceptron", node=PerceptronConfig)
    config_store.store(group="model", name="base_mlp", node=MLPConfig)
    config_store.store(group="optimizer", name="base_sgd", node=SGDConfig)
    config_store.store(group="optimizer", name="base_adam", node=AdamConfig)
    config_store.store(group="trainer", name="base_trainer", node=TrainerConfig)
