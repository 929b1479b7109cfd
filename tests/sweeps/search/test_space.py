"""A search's space, read from Hydra's override grammar: what is searched, over which seeds, and
what every trial keeps fixed; a space that cannot be searched is one line naming the override."""

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from gatelab.errors import ConfigError
from gatelab.sweeps.search.space import (
    SearchSpace,
    distribution_of,
    grid_of,
    search_space_of,
)

PARSER = OverridesParser.create()


def space_of(*overrides: str, seed_key: str = "seed") -> SearchSpace:
    return search_space_of(PARSER.parse_overrides(list(overrides)), seed_key)


def distribution(override: str):
    return distribution_of(PARSER.parse_override(override))


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("x=tag(log, interval(0.01, 5))", FloatDistribution(0.01, 5.0, log=True)),
        ("x=interval(0, 0.99)", FloatDistribution(0.0, 0.99)),
        # Hydra's interval is of floats, whole ends too: integers come from range.
        ("x=interval(1, 5)", FloatDistribution(1.0, 5.0)),
        # Hydra's range excludes its end, as Python's does; Optuna's high is included.
        ("x=range(1, 9)", IntDistribution(1, 8)),
        ("x=range(2, 10, 2)", IntDistribution(2, 8, step=2)),
        ("x=choice(relu, tanh)", CategoricalDistribution(["relu", "tanh"])),
        ("x=relu,tanh", CategoricalDistribution(["relu", "tanh"])),
        ("x=1,2", CategoricalDistribution([1, 2])),
        # Not evenly spaced integers: each value is a choice.
        ("x=range(0, 1, 0.25)", CategoricalDistribution([0.0, 0.25, 0.5, 0.75])),
    ],
)
def test_each_sweep_of_hydras_grammar_is_the_optuna_distribution_hydras_optuna_sweeper_makes(
    override, expected
):
    assert distribution(override) == expected


def test_a_shuffled_range_is_a_choice_of_its_values():
    shuffled = distribution("x=shuffle(range(3))")
    assert isinstance(shuffled, CategoricalDistribution)
    assert sorted(shuffled.choices) == [0, 1, 2]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "optimizer.learning_rate=tag(log, interval(0, 1))",
            "optimizer.learning_rate=tag(log, interval(0, 1)): a log interval starts above 0, "
            "not at 0; e.g. tag(log, interval(0.01, 5))",
        ),
        ("model.hidden_units=range(5, 1)", "model.hidden_units=range(5, 1) has no value to search"),
        (
            "model=glob(*)",
            "model=glob(*): a glob is not searched; list the options, e.g. model=choice(a, b)",
        ),
    ],
)
def test_a_range_that_cannot_be_searched_is_one_line_naming_the_override(override, message):
    with pytest.raises(ConfigError) as raised:
        distribution(override)
    assert str(raised.value) == message


def test_a_space_keeps_its_searched_keys_in_command_line_order_with_their_text():
    space = space_of(
        "model=mlp",
        "optimizer.momentum=interval(0, 0.9)",
        "seed=range(10)",
        "optimizer.learning_rate=tag(log, interval(0.05, 5))",
        "trainer.epochs=300",
    )
    assert list(space.distributions) == ["optimizer.momentum", "optimizer.learning_rate"]
    assert space.distributions["optimizer.momentum"] == FloatDistribution(0.0, 0.9)
    assert space.texts == {
        "optimizer.momentum": "interval(0, 0.9)",
        "optimizer.learning_rate": "tag(log, interval(0.05, 5))",
    }
    # The seeds are not searched: every trial trains over all of them.
    assert space.seeds == list(range(10))
    assert space.fixed == ["model=mlp", "trainer.epochs=300"]


def test_the_seed_key_is_the_settings_and_a_space_without_it_has_no_seeds():
    space = space_of(
        "trainer.seed=0,1,2", "optimizer.momentum=interval(0, 0.9)", seed_key="trainer.seed"
    )
    assert space.seeds == [0, 1, 2]
    assert list(space.distributions) == ["optimizer.momentum"]
    unseeded = space_of("optimizer.momentum=interval(0, 0.9)")
    assert unseeded.seeds is None and unseeded.fixed == []


def test_a_trials_overrides_are_the_fixed_ones_then_its_values():
    space = space_of(
        "model=mlp", "optimizer.momentum=interval(0, 0.9)", "optimizer.learning_rate=1,2"
    )
    values = {"optimizer.momentum": 0.25, "optimizer.learning_rate": 2}
    assert space.overrides(values) == [
        "model=mlp",
        "optimizer.momentum=0.25",
        "optimizer.learning_rate=2",
    ]


def test_a_space_with_nothing_to_search_is_one_line_saying_how_to_give_a_range():
    with pytest.raises(ConfigError) as raised:
        space_of("seed=range(10)", "optimizer.learning_rate=0.1")
    assert str(raised.value) == (
        "hydra/sweeper=search: the search space is empty; give at least one key a range, "
        "e.g. 'optimizer.learning_rate=tag(log, interval(0.01, 5))' or "
        "'optimizer.momentum=interval(0, 0.99)' (Hydra's interval, range or choice)"
    )


def test_a_grid_walks_every_choice_and_every_value_of_a_range():
    space = space_of("model=perceptron,mlp", "model.hidden_units=range(2, 9, 3)")
    assert grid_of(space) == {"model": ["perceptron", "mlp"], "model.hidden_units": [2, 5, 8]}


@pytest.mark.parametrize(
    "override",
    ["optimizer.momentum=interval(0, 0.9)", "optimizer.learning_rate=tag(log, interval(1, 8))"],
)
def test_a_grid_over_an_interval_is_one_line_naming_it_and_what_to_give_instead(override):
    space = space_of("model=perceptron,mlp", override)
    with pytest.raises(ConfigError) as raised:
        grid_of(space)
    key, text = override.split("=", 1)
    assert str(raised.value) == (
        f"hydra.sweeper.sampler=grid: {key}={text} is continuous; give it a range or choice "
        "(e.g. choice(0.1, 0.5, 1)), or use sampler=tpe"
    )
