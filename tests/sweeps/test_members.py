"""A population's members (`sweeps.members`): each value checked once by the schema."""

import pytest

from gatelab.errors import ConfigError
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
