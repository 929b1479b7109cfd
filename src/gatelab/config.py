"""Schemas of every config group option, registered in Hydra's ConfigStore, and their checks.

OmegaConf rejects unknown keys and wrong types as a config is composed; each schema's
`__post_init__` rejects values its type allows but training does not (a negative learning
rate, zero epochs). `validate` runs those checks once, before any training or tracking.
Values live in one place, the YAML files of conf/: here a field is MISSING, which its file sets.
"""

import re
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gatelab.data import GATES, MAX_INPUTS

LOSSES = ("mse", "binary_crossentropy")
# Training holds every epoch's row order in memory at once: 10 million rows is 40 MB of it.
MAX_ROWS_TRAINED = 10_000_000
# A tag as MLflow allows its key (a value after `:` may hold anything but a line break).
_TAG = re.compile(r"[\w.\-/ ]+(:.*)?")


class ConfigError(ValueError):
    """A value training cannot use; the message is one line: field, value, what is allowed."""


def _require(condition: bool, field_name: str, value: Any, allowed: str) -> None:
    if not condition:
        raise ConfigError(f"{field_name}={value!r} is not allowed: {allowed}")


def _require_activation(field_name: str, name: str) -> None:
    # Imported here, where a config is checked before training, not where schemas are registered:
    # the process launching a sweep composes configs but never needs TensorFlow.
    from gatelab.backend import keras

    try:
        keras.activations.get(name)
    except ValueError:
        _require(False, field_name, name, "use a Keras activation name such as sigmoid, relu, tanh")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class TruthTableConfig:
    _target_: str = "gatelab.data.truth_table"
    gate: str = MISSING
    n_inputs: int = MISSING

    def __post_init__(self) -> None:
        _require(self.gate in GATES, "dataset.gate", self.gate, f"one of {', '.join(GATES)}")
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
            "a list of rows of numbers, all of one length, e.g. [[0],[1]]",
        )
        _require(
            all(_is_number(target) for target in self.targets),
            "dataset.targets",
            self.targets,
            "a list of numbers, e.g. [0,1]",
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


@dataclass
class PerceptronConfig:
    _target_: str = "gatelab.models.build_perceptron"
    use_bias: bool = MISSING
    activation: str = MISSING

    def __post_init__(self) -> None:
        _require_activation("model.activation", self.activation)


@dataclass
class MLPConfig:
    _target_: str = "gatelab.models.build_mlp"
    hidden_units: list[int] = MISSING
    activation: str = MISSING
    output_activation: str = MISSING
    use_bias: bool = MISSING

    def __post_init__(self) -> None:
        _require(
            len(self.hidden_units) > 0 and all(units >= 1 for units in self.hidden_units),
            "model.hidden_units",
            list(self.hidden_units),
            "a non-empty list of layer sizes, each at least 1, e.g. [2]",
        )
        _require_activation("model.activation", self.activation)
        _require_activation("model.output_activation", self.output_activation)


def _require_learning_rate(learning_rate: float) -> None:
    _require(
        learning_rate > 0,
        "optimizer.learning_rate",
        learning_rate,
        "a number greater than 0, e.g. 0.1",
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
        _require(self.epsilon > 0, "optimizer.epsilon", self.epsilon, "a number greater than 0")


@dataclass
class TrainerConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    shuffle: bool = MISSING
    loss: str = MISSING
    print_every: int = MISSING
    jit_compile: bool = MISSING

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


@dataclass
class TrackingConfig:
    # None keeps MLflow's own choice: MLFLOW_TRACKING_URI if set, else sqlite:///mlflow.db here.
    uri: str | None = MISSING
    experiment: str = MISSING


@dataclass
class Config:
    dataset: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    trainer: TrainerConfig = MISSING
    tracking: TrackingConfig = MISSING
    seed: int = MISSING
    tags: list[str] = MISSING

    def __post_init__(self) -> None:
        _require(0 <= self.seed < 2**32, "seed", self.seed, "an integer from 0 to 2**32 - 1")
        _require(
            all(is_valid_tag(tag) for tag in self.tags),
            "tags",
            list(self.tags),
            "names of letters, digits, _ - . / and spaces, or name:value, e.g. [baseline,team:ml]",
        )
        rows = self.dataset.n_rows
        _require(
            self.trainer.epochs * rows <= MAX_ROWS_TRAINED,
            "trainer.epochs",
            self.trainer.epochs,
            f"at most {MAX_ROWS_TRAINED // rows:,} for a dataset of {rows:,} rows "
            f"(epochs x rows at most {MAX_ROWS_TRAINED:,}); lower one of them",
        )


def is_valid_tag(tag: str) -> bool:
    """Whether MLflow accepts `tag` (`name` or `name:value`) as a tag."""
    return bool(_TAG.fullmatch(tag))


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


def validate(cfg: DictConfig) -> None:
    """Run every schema's checks on the composed config; raise ConfigError at the first failure."""
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
