"""A search's space from Hydra's override grammar, read as Hydra's Optuna sweeper reads it.

`optimizer.learning_rate=tag(log, interval(0.01, 5))` is a log-uniform float, `interval(0, 0.99)`
a uniform one, `range(1, 9)` an integer range (its end excluded, as Hydra's `range`), and
`choice(a, b)` or `a,b` a categorical. The seed key's values (`seed=range(100)`) are not
searched: every trial trains over all of them. Any other override is fixed, passed to every trial.
A range that cannot be searched (a reversed interval, seeds given as an interval), or whose values
cannot make a trial's config (a key the config lacks, a choice its schema refuses), is one line.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from gatelab.errors import CONFIG_ERRORS, ConfigError, one_line


@dataclass(frozen=True)
class SearchSpace:
    """What a search varies, over which seeds, and what it keeps fixed.

    Args:
        distributions: each searched key's Optuna distribution, in command-line order.
        texts: each searched key's override as given (`tag(log, interval(0.01, 5))`).
        seeds: the seed key's values, every trial trains over all of them; None: not swept.
        fixed: the other overrides, `key=value` as given, passed to every trial.
    """

    distributions: dict[str, BaseDistribution]
    texts: dict[str, str]
    seeds: list[int] | None = None
    fixed: list[str] = field(default_factory=list)

    def overrides(self, values: dict[str, Any]) -> list[str]:
        """A trial's overrides: the fixed ones, then its searched `values`."""
        return [*self.fixed, *(f"{key}={value}" for key, value in values.items())]


def search_space_of(overrides: list[Override], seed_key: str) -> SearchSpace:
    """The space of `overrides`; ConfigError if nothing in them is a range to search."""
    distributions: dict[str, BaseDistribution] = {}
    texts: dict[str, str] = {}
    seeds = None
    fixed = []
    for override in overrides:
        key = override.get_key_element()
        if not override.is_sweep_override():
            fixed.append(override.input_line)
        elif key == seed_key:
            seeds = seeds_of(override)
        else:
            distributions[key] = distribution_of(override)
            texts[key] = value_text(override)
    if not distributions:
        raise ConfigError(
            "hydra/sweeper=search: the search space is empty; give at least one key a range, "
            "e.g. 'optimizer.learning_rate=tag(log, interval(0.01, 5))' or "
            "'optimizer.momentum=interval(0, 0.99)' (Hydra's interval, range or choice)"
        )
    return SearchSpace(distributions, texts, seeds, fixed)


def seeds_of(override: Override) -> list[int]:
    """The seeds of the seed key's sweep (`seed=range(100)`, `seed=1,5,9`); ConfigError for an
    interval (seeds are not searched) or a value that is not a whole number."""
    given = f"{override.get_key_element()}={value_text(override)}"
    allowed = f"e.g. {override.get_key_element()}=range(100) or {override.get_key_element()}=1,5,9"
    if not (override.is_range_sweep() or override.is_choice_sweep()):
        raise ConfigError(
            f"{given}: the seeds are not searched, every trial trains over all of them; give "
            f"them as a range or a list, {allowed}"
        )
    seeds = list(override.sweep_iterator())
    whole = [
        seed
        for seed in seeds
        if isinstance(seed, int | float) and not isinstance(seed, bool) and float(seed).is_integer()
    ]
    if not seeds or len(whole) < len(seeds):
        raise ConfigError(f"{given}: the seeds are whole numbers, at least one; {allowed}")
    return [int(seed) for seed in seeds]


def seeds_text(seeds: list[int]) -> str:
    """Seeds as one value of Hydra's grammar, in order: `range(0, 100)` when consecutive."""
    ordered = sorted(seeds)
    if len(ordered) > 1 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"range({ordered[0]}, {ordered[-1] + 1})"
    return ",".join(str(seed) for seed in ordered)


def value_text(override: Override) -> str:
    """A sweep override's value as given: `tag(log, interval(0.01, 5))`."""
    return override.input_line.split("=", 1)[1]


def distribution_of(override: Override) -> BaseDistribution:
    """An Optuna distribution for one sweep override, as Hydra's Optuna sweeper makes it."""
    value = override.value()
    key = override.get_key_element()
    if override.is_choice_sweep():
        if not isinstance(value, ChoiceSweep):  # a glob of a group's options
            raise ConfigError(
                f"{key}={value_text(override)}: a glob is not searched; list the options, "
                f"e.g. {key}=choice(a, b)"
            )
        return CategoricalDistribution(
            list(override.sweep_iterator(transformer=Transformer.encode))
        )
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        if value.shuffle or any(isinstance(bound, float) for bound in (value.start, value.step)):
            choices = list(override.sweep_iterator(transformer=Transformer.encode))
            return CategoricalDistribution(choices)
        values = list(override.sweep_iterator())
        if not values:
            raise ConfigError(f"{key}={value_text(override)} has no value to search")
        return IntDistribution(int(values[0]), int(values[-1]), step=int(value.step))
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        log = "log" in value.tags
        if log and value.start <= 0:
            raise ConfigError(
                f"{key}={value_text(override)}: a log interval starts above 0, "
                f"not at {value.start:g}; e.g. tag(log, interval(0.01, 5))"
            )
        if value.start > value.end:
            raise ConfigError(
                f"{key}={value_text(override)}: an interval goes from its low end to its high "
                f"end, not down from {value.start:g} to {value.end:g}; e.g. "
                f"interval({value.end:g}, {value.start:g})"
            )
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise ConfigError(
        f"{key}={value_text(override)} is not a search range: use interval, "
        "tag(log, interval(...)), range or choice"
    )


def distribution_text(distribution: BaseDistribution) -> str:
    """A distribution as Hydra's grammar gives it, one text for equal distributions however they
    were typed (`interval(0,1)`, `interval(0, 1.0)`): `interval(0.0, 1.0)`."""
    if isinstance(distribution, CategoricalDistribution):
        return f"choice({', '.join(map(str, distribution.choices))})"
    if isinstance(distribution, IntDistribution):
        step = f", {distribution.step}" if distribution.step != 1 else ""
        text = f"range({distribution.low}, {distribution.high + distribution.step}{step})"
    else:
        assert isinstance(distribution, FloatDistribution)
        text = f"interval({distribution.low!r}, {distribution.high!r})"
    return f"tag(log, {text})" if distribution.log else text


def grid_of(space: SearchSpace) -> dict[str, list[Any]]:
    """The values `sampler=grid` walks through; ConfigError for a continuous interval."""
    grid = {}
    for key, distribution in space.distributions.items():
        if isinstance(distribution, CategoricalDistribution):
            grid[key] = list(distribution.choices)
        elif isinstance(distribution, IntDistribution) and not distribution.log:
            grid[key] = list(range(distribution.low, distribution.high + 1, distribution.step))
        else:
            raise ConfigError(
                f"hydra.sweeper.sampler=grid: {key}={space.texts[key]} is continuous; give it "
                "a range or choice (e.g. choice(0.1, 0.5, 1)), or use sampler=tpe"
            )
    return grid


def values_to_check(distribution: BaseDistribution) -> list[Any]:
    """A searched key's values checked before any trial is asked: a choice's every value,
    else a range's low end, which stands for the range's key and type."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    assert isinstance(distribution, IntDistribution | FloatDistribution)
    return [distribution.low]


def check_values(space: SearchSpace, check: Callable[[str, Any, bool], object]) -> None:
    """Refuse in one line, before any trial is asked, a searched key or choice no trial could
    train: `check(key, value, every)` raises what a trial given `value` for `key` would fail on,
    for each of `values_to_check`. With `every` (a choice) the value must pass the schema; a
    range's low end must only compose (a key the config has, a type its field takes): some of
    a range's values may fail alone, trial by trial (`interval(-1, 1)` for a learning rate)."""
    for key, distribution in space.distributions.items():
        every = isinstance(distribution, CategoricalDistribution)
        for value in values_to_check(distribution):
            try:
                check(key, value, every)
            except CONFIG_ERRORS as error:
                raise ConfigError(f"{key}={space.texts[key]}: {one_line(error)}") from None
