"""A search's settings: each objective's direction, every bad setting refused in one line naming
it before anything trains, the study's name, and a trial's objective values from its seeds."""

import math
import re

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from gatelab.errors import ConfigError
from gatelab.sweeps.search.space import SearchSpace, search_space_of
from gatelab.sweeps.search.study import (
    Settings,
    check,
    objective_values,
    storage_path,
    study_name_of,
)


def space_of(*overrides: str) -> SearchSpace:
    return search_space_of(OverridesParser.create().parse_overrides(list(overrides)), "seed")


# A learning rate on a log scale and a momentum: what the docs' searches vary.
SPACE = space_of(
    "seed=range(10)",
    "optimizer.learning_rate=tag(log, interval(0.05, 5))",
    "optimizer.momentum=interval(0, 0.9)",
)


@pytest.mark.parametrize(
    ("objective", "direction", "directions"),
    [
        (["success_rate"], None, ["maximize"]),
        (["loss"], None, ["minimize"]),
        (["success_rate", "epochs_to_solve_median"], None, ["maximize", "minimize"]),
        (["success_rate"], ["minimize"], ["minimize"]),
    ],
)
def test_each_objective_improves_in_its_own_direction_unless_one_is_given(
    objective, direction, directions
):
    assert Settings(objective=objective, direction=direction).directions == directions


def test_the_default_settings_and_a_grid_over_ranges_and_choices_pass_the_check():
    check(Settings(), SPACE)
    grid = space_of("model=perceptron,mlp", "model.hidden_units=range(2, 9, 3)")
    check(Settings(sampler="grid", objective=["loss", "success_rate"]), grid)


# Each bad setting and its one line: the setting, its value and what is allowed.
BAD_SETTINGS = [
    (
        Settings(n_trials=0),
        "hydra.sweeper.n_trials=0: a study runs at least 1 trial; e.g. hydra.sweeper.n_trials=100",
    ),
    (
        Settings(batch_size=0),
        "hydra.sweeper.batch_size=0: at least 1 trial is asked at a time",
    ),
    (
        Settings(sampler="bayes"),
        "hydra.sweeper.sampler=bayes is not a sampler: choose one of "
        "tpe, random, cmaes, gp, qmc, grid",
    ),
    (
        Settings(objective=[]),
        "hydra.sweeper.objective=[]: one objective, or two for a multi-objective study",
    ),
    (
        Settings(objective=["success_rate", "loss", "epochs_to_solve_median"]),
        "hydra.sweeper.objective=['success_rate', 'loss', 'epochs_to_solve_median']: "
        "one objective, or two for a multi-objective study",
    ),
    (
        Settings(objective=["accuracy"]),
        "hydra.sweeper.objective=accuracy is not an objective: choose one of "
        "success_rate, epochs_to_solve_median, loss",
    ),
    (
        Settings(direction=["sideways"]),
        "hydra.sweeper.direction=sideways: choose maximize or minimize",
    ),
    (
        Settings(direction=["maximize", "minimize"]),
        "hydra.sweeper.direction=['maximize', 'minimize']: one direction per objective "
        "(success_rate)",
    ),
    (
        Settings(max_failure_rate=1.5),
        "hydra.sweeper.max_failure_rate=1.5: a share of trials between 0 and 1",
    ),
    (
        Settings(max_failure_rate=-0.1),
        "hydra.sweeper.max_failure_rate=-0.1: a share of trials between 0 and 1",
    ),
    (
        Settings(sampler="grid"),
        "hydra.sweeper.sampler=grid: optimizer.learning_rate=tag(log, interval(0.05, 5)) "
        "is continuous; give it a range or choice (e.g. choice(0.1, 0.5, 1)), "
        "or use sampler=tpe",
    ),
]


@pytest.mark.parametrize(
    ("settings", "message"),
    BAD_SETTINGS,
    ids=[re.split(r":| is ", message)[0] for _, message in BAD_SETTINGS],
)
def test_a_bad_setting_is_one_line_naming_it_its_value_and_what_is_allowed(settings, message):
    with pytest.raises(ConfigError) as raised:
        check(settings, SPACE)
    assert str(raised.value) == message


def test_a_sampler_whose_package_is_missing_is_refused_before_the_study_opens(monkeypatch):
    # Optuna imports cmaes (or torch for gp) only when the sampler first samples.
    import importlib.util

    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "cmaes" else found(name)
    )
    with pytest.raises(ConfigError) as raised:
        check(Settings(sampler="cmaes"), SPACE)
    assert str(raised.value) == (
        "hydra.sweeper.sampler=cmaes needs cmaes: pip install cmaes, or use sampler=tpe"
    )
    check(Settings(sampler="random"), SPACE)


def test_the_study_is_named_by_its_setting_else_by_the_commands_overrides_redacted():
    overrides = ["seed=range(10)", "optimizer.momentum=interval(0, 0.9)"]
    assert study_name_of(Settings(study_name="shared"), overrides) == "shared"
    assert study_name_of(Settings(), overrides) == (
        "search seed=range(10) optimizer.momentum=interval(0, 0.9)"
    )
    # The name is stored in Optuna's storage and shown by its dashboard.
    secret = [*overrides, "tracking.uri=http://alice:S3CRET@host:5000"]
    name = study_name_of(Settings(), secret)
    assert "S3CRET" not in name and "alice" not in name
    assert name.endswith("tracking.uri=http://***@host:5000")


def test_a_sqlite_storage_is_a_file_and_a_server_is_none():
    assert str(storage_path(None)) == "optuna.db"
    assert str(storage_path("sqlite:///studies/xor.db")) == "studies/xor.db"
    assert storage_path("postgresql://gatelab@127.0.0.1:5432/optuna") is None


def test_a_trials_objective_values_are_its_seeds_numbers_in_the_objectives_order():
    metrics = {"success_rate": 0.7, "epochs_to_solve_median": 140.0, "loss_median": 0.01}
    assert objective_values(metrics, ["success_rate"]) == [0.7]
    # `loss` is the median final loss of the seeds.
    assert objective_values(metrics, ["loss", "epochs_to_solve_median"]) == [0.01, 140.0]


def test_a_number_no_seed_has_is_the_worst_value_in_its_objectives_direction():
    # No seed solved: no median epochs to solve; every loss diverged: no median loss.
    metrics = {"success_rate": 0.0}
    assert objective_values(metrics, ["epochs_to_solve_median", "loss"]) == [math.inf, math.inf]
    assert objective_values({}, ["success_rate"]) == [-math.inf]
