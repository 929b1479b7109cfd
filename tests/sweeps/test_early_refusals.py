"""Settings and search spaces refused before any run, study or trial is opened (issue 26 item 7).

Hydra calls the `mlflow_sweep` callback, which opens a sweep's parent run, before it makes the
sweeper: the vectorized sweeper's settings are checked by the callback first, through the
plugin's `check_settings`, and again by the sweeper (one function, `vectorized.settings`). A
search's keys and choices are checked as its trials would meet them, before the study opens.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import HydraContext

from gatelab.errors import ConfigError, SweepNotStarted
from gatelab.sweeps.callback import SweepCallback
from gatelab.sweeps.members import ValueChecker
from gatelab.sweeps.search.space import search_space_of, values_to_check
from gatelab.sweeps.search.study import Settings
from gatelab.sweeps.search.sweeper import SearchSweeperImpl
from gatelab.sweeps.sweeper import task_config
from gatelab.sweeps.vectorized.sweeper import VectorizedSweeperImpl
from hydra_plugins.gatelab_vectorized_sweeper.vectorized_sweeper import VectorizedSweeper
from tests.helpers import CONFIG_DIR, run_train

REFUSED_SETTINGS = [
    (
        "runs_per_transaction",
        0,
        "hydra.sweeper.runs_per_transaction=0 is not allowed: a number of child runs of at least 1",
    ),
    (
        "runs_per_transaction",
        -5,
        "hydra.sweeper.runs_per_transaction=-5 is not allowed: a number of child runs of at "
        "least 1",
    ),
    (
        "max_jobs",
        0,
        "hydra.sweeper.max_jobs=0 is not allowed: a number of jobs of at least 1 (the most this "
        "sweep may run)",
    ),
    (
        "max_batch_size",
        0,
        "hydra.sweeper.max_batch_size=0 is not allowed: a number of jobs of at least 1, or null "
        "(all at once)",
    ),
]

IDS = [f"{setting}={value}" for setting, value, _ in REFUSED_SETTINGS]


def sweep_config(*overrides: str):
    """The multirun's config as Hydra gives it to the callback, Hydra's node included."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def store_files(folder: Path) -> list[str]:
    """The MLflow and Optuna stores' files in `folder`."""
    return sorted(path.name for path in folder.glob("*") if path.name.startswith(STORES))


STORES = ("mlflow", "optuna")


@pytest.mark.parametrize(("setting", "value", "line"), REFUSED_SETTINGS, ids=IDS)
def test_a_vectorized_setting_out_of_range_is_one_line_from_the_plugin_and_the_sweeper(
    setting, value, line
):
    config = sweep_config("hydra/sweeper=vectorized", f"hydra.sweeper.{setting}={value}")
    with pytest.raises(ConfigError) as from_plugin:
        VectorizedSweeper.check_settings(config.hydra.sweeper)
    assert str(from_plugin.value) == line
    # The sweeper, run without the callback, refuses it the same way before it plans a job.
    with pytest.raises(ConfigError) as from_sweeper:
        VectorizedSweeperImpl(**{setting: value}).sweep([])
    assert str(from_sweeper.value) == line


def test_the_default_vectorized_settings_pass():
    config = sweep_config("hydra/sweeper=vectorized")
    VectorizedSweeper.check_settings(config.hydra.sweeper)


@pytest.mark.parametrize(("setting", "value", "line"), REFUSED_SETTINGS, ids=IDS)
def test_the_callback_refuses_a_setting_before_it_opens_the_parent_run(
    fresh_tracking_uri, tmp_path, setting, value, line
):
    config = sweep_config("hydra/sweeper=vectorized", f"hydra.sweeper.{setting}={value}")
    with pytest.raises(SweepNotStarted) as stopped:
        SweepCallback().on_multirun_start(config)
    assert isinstance(stopped.value.cause, ConfigError)
    assert str(stopped.value.cause) == line
    assert store_files(tmp_path) == []  # no store, so no FAILED parent and no "solved 0/0"


@pytest.mark.slow
def test_a_refused_setting_is_one_line_exit_2_and_no_store(tmp_path):
    result = run_train(
        tmp_path, "-m", "hydra/sweeper=vectorized", "seed=1,2", "hydra.sweeper.max_jobs=0"
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines() == [f"error: {REFUSED_SETTINGS[2][2]}"]
    assert "sweep run" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("override", "values"),
    [
        ("optimizer.learning_rate=choice(0.1, 0.5)", [0.1, 0.5]),
        ("trainer.epochs=range(10, 50, 10)", [10]),
        ("optimizer.momentum=interval(0, 0.9)", [0.0]),
        ("optimizer.learning_rate=tag(log, interval(0.01, 1))", [0.01]),
    ],
)
def test_a_search_checks_each_choice_and_a_range_s_low_end(override, values):
    (parsed,) = OverridesParser.create().parse_overrides([override])
    space = search_space_of([parsed], "seed")
    (distribution,) = space.distributions.values()
    assert values_to_check(distribution) == values


@pytest.fixture
def search(fresh_tracking_uri) -> Iterator[SearchSweeperImpl]:
    """The search sweeper as Hydra sets it up for `-m hydra/sweeper=search`, in tmp_path."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        sweeper = SearchSweeperImpl(Settings())
        sweeper.config = compose(
            "config", overrides=["hydra/sweeper=search"], return_hydra_config=True
        )
        sweeper.hydra_context = HydraContext(
            config_loader=GlobalHydra.instance().config_loader(), callbacks=None
        )
        yield sweeper


@pytest.mark.parametrize(
    ("searched", "line"),
    [
        # Trained as populations: each value checked as a trial's member would be.
        (
            "optimizer.learning_rate=choice(0.1, abc, true)",
            "optimizer.learning_rate=choice(0.1, abc, true): optimizer.learning_rate='abc' is not "
            "allowed: Value 'abc' of type 'str' could not be converted to Float",
        ),
        (
            "optimizer.momentum=choice(0.5, 1.5)",
            "optimizer.momentum=choice(0.5, 1.5): optimizer.momentum=1.5 is not allowed: from 0 "
            "up to (not) 1",
        ),
        # Run one by one: each value composed into a job's config, as the job would be.
        (
            "optimizer.foo=interval(0,1)",
            "optimizer.foo=interval(0,1): optimizer.foo is not a field of optimizer: allowed "
            "fields are learning_rate, momentum, nesterov",
        ),
        (
            "optimizer=choice(sgd, adamx)",
            "optimizer=choice(sgd, adamx): optimizer=adamx is not an option of 'optimizer': "
            "choose one of adam, sgd",
        ),
        (
            "trainer.epochs=interval(10, 50)",
            "trainer.epochs=interval(10, 50): trainer.epochs=10.0 is not allowed: Value '10.0' of "
            "type 'float' could not be converted to Integer",
        ),
        (
            "model.hidden_units=choice([2], [x])",
            "model.hidden_units=choice([2], [x]): model.hidden_units[0]='x' is not allowed: Value "
            "'x' of type 'str' could not be converted to Integer",
        ),
    ],
)
def test_a_search_whose_values_cannot_make_a_trial_is_refused_before_the_study_opens(
    search, tmp_path, searched, line
):
    with pytest.raises(ConfigError) as refused:
        search.sweep(["seed=range(2)", searched])
    assert str(refused.value) == line
    # No study asked a trial, no run opened: neither store exists.
    assert store_files(tmp_path) == []


@pytest.mark.parametrize("one_by_one", [False, True])
def test_a_range_whose_values_only_some_trials_cannot_train_is_searched(search, one_by_one):
    # Its trials of a learning rate <= 0 fail alone (max_failure_rate), as test_search.py runs.
    space = search_space_of(
        search.parsed(["seed=range(2)", "optimizer.learning_rate=interval(-1, 1)"]), "seed"
    )
    checker = ValueChecker(task_config(search.compose(space.fixed)))
    search.check_searchable(space, checker, one_by_one)
