"""A population's members (`sweeps.members`): each value checked once by the schema."""

import copy
import math
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf

from gatelab.config import validate
from gatelab.errors import ConfigError, one_line
from gatelab.sweeps import members
from gatelab.sweeps.members import ValueChecker


def test_a_value_is_checked_by_the_schema_and_a_bad_or_unknown_one_is_one_line(compose_config):
    checker = ValueChecker(compose_config("model=mlp", "dataset=xor"))
    assert checker.checked_value("optimizer.learning_rate", 1) == 1.0
    with pytest.raises(ConfigError) as bad:
        checker.checked_value("optimizer.learning_rate", -1)
    assert "optimizer.learning_rate" in str(bad.value) and "\n" not in str(bad.value)
    with pytest.raises(ConfigError) as unknown:
        checker.checked_value("optimizer.foo", 1)
    assert str(unknown.value) == "optimizer.foo=1: the config has no field optimizer.foo"
    # The config it checks against is left as it was: a good value still passes.
    assert checker.checked_value("optimizer.learning_rate", 0.5) == 0.5


def whole_config_check(cfg: DictConfig, key: str, value: Any) -> tuple[str, str]:
    """What `validate` of the whole config holding `value` decides: ("ok", value as held) or
    ("refused", the error line), as a job run alone with `key=value` is checked."""
    cfg = copy.deepcopy(cfg)
    if OmegaConf.select(cfg, key, default=None) is None:
        return "refused", f"{key}={value}: the config has no field {key}"
    try:
        OmegaConf.update(cfg, key, value, merge=False)
        validate(cfg)
        return "ok", repr(OmegaConf.select(cfg, key))
    except ConfigError as error:
        return "refused", str(error)
    except Exception as error:
        return "refused", one_line(error)


def checker_decision(checker: ValueChecker, key: str, value: Any) -> tuple[str, str]:
    try:
        return "ok", repr(checker.checked_value(key, value))
    except ConfigError as error:
        return "refused", str(error)


GOOD_AND_BAD_VALUES = {
    "seed": [0, 5, "7", 2**32 - 1, 2**32, -1, 1.5, "abc", True, None, "???", "${trainer.epochs}"],
    "optimizer.learning_rate": [0.1, 1, "1e-3", 1e308, 0, -1, math.inf, math.nan, "abc", None],
    "optimizer.momentum": [0, 0.9, 0.99999, 1, -0.1, 1.5, math.nan, "abc", None, "???"],
}


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=mlp", "dataset=xor"],
        ["optimizer=adam"],  # no momentum field
        ["trainer.epochs=0"],  # a config that fails whatever the value
        ["trainer.epochs=${seed}", "seed=3"],  # a field read through seed: seed=0 refuses it
    ],
)
def test_each_value_gets_the_decision_and_error_line_of_a_whole_config_validate(
    compose_config, overrides
):
    cfg = compose_config(*overrides)
    checker = ValueChecker(cfg)
    for key, values in GOOD_AND_BAD_VALUES.items():
        for value in values:
            expected = whole_config_check(cfg, key, value)
            assert checker_decision(checker, key, value) == expected, (key, value)


def test_a_value_of_a_valid_config_is_checked_by_its_field_alone_not_a_whole_validate(
    compose_config, monkeypatch
):
    calls = []
    monkeypatch.setattr(members, "validate", lambda cfg: calls.append(cfg))
    checker = ValueChecker(compose_config("model=mlp", "dataset=xor"))
    for seed in range(100):
        checker.member_values({"seed": seed, "optimizer.learning_rate": 0.1 + seed})
    with pytest.raises(ConfigError, match=r"^seed=-1 is not allowed"):
        checker.checked_value("seed", -1)
    assert calls == []
    # A field read through another (an interpolation) is checked with the whole config.
    checker = ValueChecker(compose_config("trainer.epochs=${seed}", "seed=3"))
    checker.checked_value("seed", 4)
    assert len(calls) == 1
