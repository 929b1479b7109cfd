"""The config: a dataclass schema per group option (`schemas`), their checks (`checks`), and
Keras's names as tables (`keras_names`), all without importing TensorFlow."""

from gatelab.config.checks import validate
from gatelab.config.schemas import register_configs

__all__ = ["register_configs", "validate"]
