"""What a search refuses in one line, before any trial is asked or run opened: a range that cannot
be searched, seeds given as a range to search, a storage that cannot be opened (its password left
out), and a study whose trials were scored on other seeds, space, objective or config."""

import logging

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from gatelab.errors import ConfigError
from gatelab.sweeps.search.space import SearchSpace, search_space_of
from gatelab.sweeps.search.study import (
    SCORED_ON_ATTR,
    Settings,
    check_scored_on,
    open_study,
    scored_on,
)
from tests.helpers import free_port

optuna.logging.set_verbosity(optuna.logging.WARNING)

PARSER = OverridesParser.create()


def space_of(*overrides: str) -> SearchSpace:
    return search_space_of(PARSER.parse_overrides(list(overrides)), "seed")


def refusal(call, *arguments) -> str:
    with pytest.raises(ConfigError) as raised:
        call(*arguments)
    (line,) = str(raised.value).splitlines()
    return line


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            ["optimizer.learning_rate=interval(5, 0.01)"],
            "optimizer.learning_rate=interval(5, 0.01): an interval goes from its low end to its "
            "high end, not down from 5 to 0.01; e.g. interval(0.01, 5)",
        ),
        # The seed key searched beside its seeds, either way round (or in hydra.sweeper.params).
        *[
            (
                ["optimizer.momentum=interval(0, 0.9)", *seeds],
                "seed=interval(0,5): the seeds are not searched, every trial trains over all of "
                "them; give them as a range or a list, e.g. seed=range(100) or seed=1,5,9",
            )
            for seeds in (
                ["seed=interval(0,5)", "seed=range(5)"],
                ["seed=range(5)", "seed=interval(0,5)"],
            )
        ],
        (
            ["optimizer.momentum=interval(0, 0.9)", "seed=choice(a, b)"],
            "seed=choice(a, b): the seeds are whole numbers, at least one; e.g. seed=range(100) "
            "or seed=1,5,9",
        ),
        (
            ["optimizer.momentum=interval(0, 0.9)", "seed=range(0)"],
            "seed=range(0): the seeds are whole numbers, at least one; e.g. seed=range(100) or "
            "seed=1,5,9",
        ),
    ],
)
def test_a_space_that_cannot_be_searched_is_one_line_naming_the_value_and_what_is_allowed(
    overrides, line
):
    assert refusal(space_of, *overrides) == line


SPACE = space_of("seed=range(3)", "optimizer.momentum=interval(0, 0.9)")
ALLOWED = (
    "give a database URL Optuna can open, e.g. sqlite:///optuna.db (in a folder that exists) "
    "or postgresql://host/optuna"
)


@pytest.mark.parametrize(
    ("storage", "line"),
    [
        (
            "notadb://x",
            "hydra.sweeper.storage=notadb://x cannot be opened (no database of that name): "
            + ALLOWED,
        ),
        (
            "not a url",
            f"hydra.sweeper.storage=not a url cannot be opened (not a database URL): {ALLOWED}",
        ),
        (
            "sqlite:////nonexistent/dir/optuna.db",
            "hydra.sweeper.storage=sqlite:////nonexistent/dir/optuna.db cannot be opened "
            f"(unable to open database file): {ALLOWED}",
        ),
    ],
)
def test_a_storage_that_cannot_be_opened_is_one_line_naming_it(storage, line):
    assert refusal(open_study, Settings(storage=storage), SPACE, []) == line


def test_an_unreachable_server_is_one_line_without_its_password():
    port = free_port()
    line = refusal(
        open_study, Settings(storage=f"postgresql://u:pw@127.0.0.1:{port}/optuna"), SPACE, []
    )
    assert line.startswith(
        f"hydra.sweeper.storage=postgresql://***@127.0.0.1:{port}/optuna cannot be opened ("
    )
    assert "Connection refused" in line and line.endswith(ALLOWED)
    assert "pw" not in line.replace("postgresql", "")


CHOICES = {"model": "mlp", "dataset": "xor", "optimizer": "sgd", "hydra/sweeper": "search"}
CONFIG = {"trainer.epochs": "300", "model.hidden_units": "[2]"}


def record(*overrides: str, settings: Settings | None = None) -> dict[str, str]:
    """What a study of `overrides` records, beside `CHOICES` and `CONFIG`."""
    return scored_on(settings or Settings(), space_of(*overrides), CHOICES, CONFIG)


RECORD = record("seed=range(3)", "optimizer.learning_rate=tag(log, interval(0.05, 5))")


def test_a_study_records_its_options_seeds_ranges_config_and_objective_not_hydras_options():
    assert RECORD == {
        "model": "mlp",
        "dataset": "xor",
        "optimizer": "sgd",
        "seed": "range(0, 3)",
        "optimizer.learning_rate": "tag(log, interval(0.05, 5.0))",
        "trainer.epochs": "300",
        "model.hidden_units": "[2]",
        "hydra.sweeper.objective": "success_rate",
        "hydra.sweeper.direction": "maximize",
    }
    # The same seeds and range however typed, and the sampler or n_trials: the same record.
    same = record(
        "seed=2,0,1",
        "optimizer.learning_rate=tag(log,interval(0.05,5.0))",
        settings=Settings(sampler="random", n_trials=500, batch_size=5),
    )
    assert same == RECORD


def test_a_new_study_records_what_its_trials_are_scored_on_and_the_same_command_reopens_it():
    study = optuna.create_study()
    check_scored_on(study, RECORD)
    assert study.user_attrs[SCORED_ON_ATTR] == RECORD
    check_scored_on(study, dict(RECORD))


@pytest.mark.parametrize(
    ("given", "difference"),
    [
        (
            record("seed=range(5)", "optimizer.learning_rate=tag(log, interval(0.05, 5))"),
            "seed=range(0, 3), this command's with seed=range(0, 5)",
        ),
        (
            record("seed=range(3)", "optimizer.learning_rate=interval(0.05, 5)"),
            "optimizer.learning_rate=tag(log, interval(0.05, 5.0)), this command's with "
            "optimizer.learning_rate=interval(0.05, 5.0)",
        ),
        (
            record(
                "seed=range(3)",
                "optimizer.learning_rate=tag(log, interval(0.05, 5))",
                settings=Settings(objective=["loss"]),
            ),
            "hydra.sweeper.objective=success_rate, this command's with "
            "hydra.sweeper.objective=loss (and 1 more)",
        ),
        (
            {**RECORD, "dataset": "and"},
            "dataset=xor, this command's with dataset=and",
        ),
        (
            {**RECORD, "optimizer.momentum": "interval(0.0, 0.9)"},
            "no optimizer.momentum, this command's with optimizer.momentum=interval(0.0, 0.9)",
        ),
        (
            {key: value for key, value in RECORD.items() if key != "trainer.epochs"},
            "trainer.epochs=300, this command's with no trainer.epochs",
        ),
    ],
)
def test_a_study_scored_on_anything_else_is_refused_in_one_line_naming_the_difference(
    given, difference
):
    study = optuna.create_study(study_name="fixed")
    check_scored_on(study, RECORD)
    assert refusal(check_scored_on, study, given) == (
        f"study 'fixed': its trials were scored with {difference}; run it with the study's "
        "values, or under another name (hydra.sweeper.study_name)"
    )
    assert study.user_attrs[SCORED_ON_ATTR] == RECORD


def test_a_study_an_earlier_gatelab_made_gets_this_commands_record_and_a_warning(caplog):
    study = optuna.create_study(study_name="old")
    study.tell(study.ask(), 0.5)
    with caplog.at_level(logging.WARNING):
        check_scored_on(study, RECORD)
    assert study.user_attrs[SCORED_ON_ATTR] == RECORD
    assert "study 'old' did not record what its trials were scored on" in caplog.text
