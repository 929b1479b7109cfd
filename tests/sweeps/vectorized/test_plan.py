"""A vectorized sweep's plan: Hydra's job list, each job's values read from its own overrides."""

import random

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from gatelab.sweeps.members import VALUE_KEYS
from gatelab.sweeps.vectorized.plan import JobValues, plan_of


def plan_for(*overrides: str, max_jobs: int = 100_000):
    return plan_of(OverridesParser.create().parse_overrides(list(overrides)), VALUE_KEYS, max_jobs)


def values_of_every_job(plan, compose_config) -> dict[int, dict]:
    values = {}
    for structural, numbers in plan.groups.items():
        of_group = JobValues(plan, compose_config(*structural))
        values.update((number, of_group.of(number)) for number in numbers)
    return values


def test_shuffled_values_are_each_jobs_own(compose_config):
    # Two shuffles of the same override differ: a job's values must not come from another one.
    random.seed(0)
    plan = plan_for("seed=shuffle(range(6))", "optimizer.learning_rate=shuffle(0.1,0.5,1.0)")
    values = values_of_every_job(plan, compose_config)
    assert len(plan.jobs) == 18
    for number, job in enumerate(plan.jobs):
        seed, rate = (item.split("=", 1)[1] for item in job)
        assert values[number] == {"seed": int(seed), "optimizer.learning_rate": float(rate)}
    # The list is Hydra's own, shuffled: not in range order.
    assert [values[number]["seed"] for number in range(0, 18, 3)] != list(range(6))


def test_quoted_values_are_typed_by_the_schema_as_the_basic_sweepers_job_sees_them(
    compose_config,
):
    plan = plan_for("seed='1','2'", "optimizer.learning_rate='0.5',1")
    values = values_of_every_job(plan, compose_config)
    assert plan.jobs[0] == ["seed='1'", "optimizer.learning_rate='0.5'"]
    for number, job in enumerate(plan.jobs):
        composed = compose_config(*job)  # the config the basic sweeper's job gets
        for key, value in values[number].items():
            expected = OmegaConf.select(composed, key)
            assert (value, type(value)) == (expected, type(expected)), (job, key)
    assert [values[number] for number in range(4)] == [
        {"seed": 1, "optimizer.learning_rate": 0.5},
        {"seed": 1, "optimizer.learning_rate": 1.0},
        {"seed": 2, "optimizer.learning_rate": 0.5},
        {"seed": 2, "optimizer.learning_rate": 1.0},
    ]
    assert isinstance(values[1]["optimizer.learning_rate"], float)


def test_a_value_the_schema_cannot_take_stops_the_sweep_as_composing_the_job_would(
    compose_config,
):
    plan = plan_for("seed=1,abc")
    of_group = JobValues(plan, compose_config())
    assert of_group.of(0) == {"seed": 1}
    with pytest.raises(ConfigCompositionException, match="seed=abc"):
        of_group.of(1)
    with pytest.raises(ConfigCompositionException):
        compose_config("seed=abc")


def test_each_distinct_override_is_parsed_once(compose_config):
    plan = plan_for("seed=range(1000)", "optimizer.learning_rate=0.1,0.2,0.5,1.0,2.0")
    values = values_of_every_job(plan, compose_config)
    assert len(values) == 5000 and values[4999] == {"seed": 999, "optimizer.learning_rate": 2.0}
    assert len(plan.parsed) == 1005


def test_jobs_are_grouped_by_their_structural_overrides():
    plan = plan_for("optimizer=sgd,adam", "seed=shuffle(1,2)", "trainer.epochs=5")
    assert plan.value_keys == {"seed"}
    assert list(plan.groups) == [
        ("optimizer=sgd", "trainer.epochs=5"),
        ("optimizer=adam", "trainer.epochs=5"),
    ]
    assert list(plan.groups.values()) == [[0, 1], [2, 3]]
    assert plan.set_on_command_line == {"optimizer", "seed", "trainer.epochs"}
    # A value key added (`+`) or set in a package is not a value a member may differ in.
    plan = plan_for("+seed=1,2", "optimizer.momentum=0.5,0.9")
    assert plan.value_keys == {"optimizer.momentum"}
    assert list(plan.groups.values()) == [[0, 1], [2, 3]]
    assert plan.value_items(3) == ["optimizer.momentum=0.9"]
