"""The checks of a composed config that the schemas' types cannot make, all before any training.

OmegaConf rejects unknown keys and wrong types as a config is composed; keys added with `+`
and `_target_` values are checked here against the schemas, and each schema's `__post_init__`
rejects values its type allows but training does not (through `require`). `validate` runs all
of them once, without importing TensorFlow.
"""

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gatelab.errors import ConfigError, shorten, unknown_key_message

# A tag as MLflow allows its key (a value after `:` may hold anything but a line break).
_TAG = re.compile(r"[\w.\-/ ]+(:.*)?")


def require(condition: bool, field_name: str, value: Any, allowed: str) -> None:
    """Raise the one-line ConfigError `field=value is not allowed: allowed` unless `condition`."""
    if not condition:
        raise ConfigError(f"{field_name}={shorten(repr(value))} is not allowed: {allowed}")


def is_number(value: Any) -> bool:
    """A finite int or float: NaN or infinity in a dataset would train to a NaN loss."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_valid_tag(tag: str) -> bool:
    """Whether MLflow accepts `tag` (`name` or `name:value`) as a tag."""
    return bool(_TAG.fullmatch(tag))


def validate(cfg: DictConfig) -> None:
    """Run every schema's checks on the composed config (or one of its nodes); raise ConfigError."""
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


def checked_objects(cfg: DictConfig) -> Any | None:
    """The schemas' objects of a config that passes `validate` and holds no interpolation (so
    that one field's checks can be run again alone, `field_check`); None for any other config."""
    try:
        validate(cfg)
    except ConfigError:
        return None
    if _has_interpolation(cfg):
        return None  # a field read through another: a new value changes what both hold
    return OmegaConf.to_object(cfg)


def _has_interpolation(node: Any) -> bool:
    if OmegaConf.is_dict(node):
        return any(
            OmegaConf.is_interpolation(node, key) or _has_interpolation(node._get_node(key))
            for key in node
        )
    if OmegaConf.is_list(node):
        return any(
            OmegaConf.is_interpolation(node, index) or _has_interpolation(node._get_node(index))
            for index in range(len(node))
        )
    return False


def field_check(objects: Any, key: str) -> Callable[[Any], None] | None:
    """What `validate` checks of the config `objects` came from (`checked_objects`) with the
    field `key` set to a value: the checks of the schema holding it and of each above it, run
    again, the others' fields unchanged. None if a node on the way is not a schema's.

    The check raises the ConfigError `validate` would; it is only `validate`'s equal for a plain
    value the field's type took (a value OmegaConf converted, not an interpolation or `???`).
    """
    *path, name = key.split(".")
    owners = [objects]
    for part in path:
        owners.append(getattr(owners[-1], part, None))
    if not all(dataclasses.is_dataclass(owner) and not isinstance(owner, type) for owner in owners):
        return None
    if name not in {field.name for field in dataclasses.fields(owners[-1]) if field.init}:
        return None

    def check(value: Any) -> None:
        # As `OmegaConf.to_object` builds them: the field's schema first, then its parents'.
        for owner, field_name in zip(reversed(owners), reversed([*path, name]), strict=True):
            value = dataclasses.replace(owner, **{field_name: value})

    return check


def _find_config_error(error: BaseException | None) -> ConfigError | None:
    while error is not None and not isinstance(error, ConfigError):
        error = error.__cause__ or error.__context__
    return error


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


def refuse_targets(arguments: list[str]) -> None:
    """Refuse a `_target_` set or added on the command line: it names code Hydra would run."""
    try:
        overrides = OverridesParser.create().parse_overrides(
            get_args_parser().parse_known_args(arguments)[0].overrides
        )
    except HydraException:
        return  # Hydra reports a malformed override itself, and one_line words it.
    for override in overrides:
        key = override.key_or_group
        if key.split(".")[-1] == "_target_" or any(map(_has_target, _values(override))):
            raise ConfigError(
                f"{shorten(override.input_line or key)} is not allowed: a _target_ names code to "
                "run and cannot be set from the command line; choose a group option instead "
                "(such as optimizer=adam)"
            )


def _values(override: Override) -> list[Any]:
    if not override.is_sweep_override():
        return [override.value()]
    try:
        return list(override.sweep_iterator())
    except HydraException:
        return []  # an interval or a glob of options: numbers and names, never a dict


def _has_target(value: Any) -> bool:
    if isinstance(value, dict):
        return "_target_" in value or any(map(_has_target, value.values()))
    if isinstance(value, list):
        return any(map(_has_target, value))
    return False


def refuse_swept_tracking(swept: list[str]) -> None:
    """A sweep has one parent run in one store and experiment: `tracking.*` cannot vary."""
    for key in swept:
        if key == "tracking" or key.startswith("tracking."):
            raise ConfigError(
                f"{key} cannot be swept: a sweep's runs share one store and experiment; "
                "run one sweep per value instead"
            )
