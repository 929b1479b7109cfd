"""Every config composes and validates; a bad value is refused with one clear line."""

import itertools
import re

import pytest

from gatelab.config import validate
from gatelab.errors import CONFIG_ERRORS, ConfigError, one_line
from tests.helpers import CONFIG_DIR, REPO


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))


def documented_options() -> dict[str, list[str]]:
    """The options of each group in docs/config.md's table: `| group | options | fields |` rows."""
    listed: dict[str, list[str]] = {}
    group = ""
    for line in (REPO / "docs" / "config.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.fullmatch(r"(`\w+`)?", cells[0]) or "`" not in cells[1]:
            continue
        group = cells[0].strip("`") or group
        listed.setdefault(group, []).extend(re.findall(r"`(\w+)`", cells[1]))
    return listed


def test_groups_have_the_options_docs_config_lists():
    listed = documented_options()
    assert set(listed) == {"dataset", "model", "optimizer", "trainer"}
    for group, names in listed.items():
        assert sorted(names) == options(group), group


@pytest.mark.parametrize(
    ("dataset", "model", "optimizer"),
    list(itertools.product(options("dataset"), options("model"), options("optimizer"))),
)
def test_every_group_combination_composes_and_validates(compose_config, dataset, model, optimizer):
    cfg = compose_config(f"dataset={dataset}", f"model={model}", f"optimizer={optimizer}")
    validate(cfg)
    assert cfg.optimizer._target_.endswith(optimizer.upper() if optimizer == "sgd" else "Adam")


def test_the_readme_shows_every_preset_as_a_command():
    readme = (REPO / "README.md").read_text()
    for experiment in options("experiment"):
        assert f"python src/train.py +experiment={experiment}`" in readme, experiment


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_preset_composes_and_validates(compose_config, experiment):
    validate(compose_config(f"+experiment={experiment}"))


def test_defaults_are_the_chapters(compose_config):
    cfg = compose_config()
    assert cfg.dataset.gate == "xor"
    assert list(cfg.model.hidden_units) == [2]
    assert cfg.optimizer.learning_rate == 0.1
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.trainer.loss) == (2000, 1, "mse")
    assert cfg.seed == 126
    assert cfg.tracking.uri is None
    assert cfg.tracking.experiment == "gatelab"


def test_each_model_brings_its_loss_and_an_override_still_wins(compose_config):
    assert compose_config("model=perceptron").trainer.loss == "binary_crossentropy"
    assert compose_config("model=mlp").trainer.loss == "mse"
    assert compose_config("model=perceptron", "trainer.loss=mse").trainer.loss == "mse"


PLACEHOLDERS = re.compile(r"\b(OUTCOME|TODO|TBD|FIXME|XXX|RESULT)\b")


def test_yaml_files_open_with_the_command_that_uses_them_and_what_to_expect():
    for path in CONFIG_DIR.rglob("*.yaml"):
        lines = [line for line in path.read_text().splitlines() if line != "# @package _global_"]
        command, _, expectation = lines[0].partition(": ")
        assert command.startswith("# python src/train.py"), path
        assert expectation.strip(), f"{path}: say what to expect after the command"
        assert not PLACEHOLDERS.search(lines[0]), f"{path}: a placeholder in {lines[0]!r}"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "optimizer.learning_rate=-1",
            "optimizer.learning_rate=-1.0 is not allowed: a finite number greater than 0",
        ),
        ("optimizer.momentum=1.5", "optimizer.momentum=1.5 is not allowed"),
        ("trainer.epochs=0", "trainer.epochs=0 is not allowed: an integer of at least 1"),
        ("trainer.batch_size=0", "trainer.batch_size=0 is not allowed"),
        (
            "trainer.loss=hinge",
            "trainer.loss='hinge' is not allowed: one of mse, binary_crossentropy",
        ),
        ("model.hidden_units=[0]", "model.hidden_units=[0] is not allowed: a non-empty list"),
        ("model.hidden_units=[]", "model.hidden_units=[] is not allowed"),
        (
            "model.activation=sigmod",
            "model.activation='sigmod' is not allowed: use a Keras activation",
        ),
        ("dataset.n_inputs=40", "dataset.n_inputs=40 is not allowed: from 1 to 16"),
        ("dataset.gate=xand", "dataset.gate='xand' is not allowed: one of and, or, xor"),
        ("seed=-1", "seed=-1 is not allowed"),
        (
            "dataset.order=descending",
            "dataset.order='descending' is not allowed: one of ascending, chapter",
        ),
        ("trainer.report=book", "trainer.report='book' is not allowed: one of default, chapter"),
        (
            "model.kernel_initializer.name=glorot",
            "model.kernel_initializer.name='glorot' is not allowed: one of glorot_uniform,",
        ),
        (
            "model.kernel_initializer.stddev=1",
            "model.kernel_initializer.stddev=1.0 is not allowed: glorot_uniform takes seed",
        ),
        (
            "model.bias_initializer={name:random_uniform,mean:1}",
            "model.bias_initializer.mean=1.0 is not allowed: random_uniform takes minval, maxval, "
            "seed",
        ),
    ],
)
def test_bad_values_are_refused_with_field_value_and_what_is_allowed(
    compose_config, override, message
):
    with pytest.raises(ConfigError) as error:
        validate(compose_config(override))
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_custom_rows_take_integers_and_need_one_target_each(compose_config):
    validate(compose_config("dataset=custom", "dataset.inputs=[[0],[1]]", "dataset.targets=[1,0]"))
    cfg = compose_config("dataset=custom", "dataset.inputs=[[0],[1]]", "dataset.targets=[1]")
    with pytest.raises(ConfigError, match=r"dataset.targets=\[1\] is not allowed: one target"):
        validate(cfg)


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            "trainer.epoch=5",
            "trainer.epoch is not a field of trainer: did you mean trainer.epochs? allowed "
            "fields are epochs, batch_size, shuffle, loss, print_every, jit_compile",
        ),
        (
            "optimizer.lr=0.5",
            "optimizer.lr is not a field of optimizer: allowed fields are learning_rate, "
            "momentum, nesterov",
        ),
        ("sed=1", "sed is not a field of the config: did you mean seed? allowed fields are"),
        ("optimizer.learning_rate=fast", "optimizer.learning_rate='fast' is not allowed: Value"),
        ("trainer.epochs=1.5", "trainer.epochs=1.5 is not allowed: Value '1.5' of type 'float'"),
        ("dataset=xorr", "dataset=xorr is not an option of 'dataset': choose one of and, custom,"),
        ("+experiment=xorr", "experiment=xorr is not an option of 'experiment': choose one of"),
    ],
)
def test_composition_errors_read_as_one_line_naming_field_value_and_choices(
    compose_config, override, line
):
    # Raised as the config is composed, before any code of ours runs; cli.one_line words them.
    with pytest.raises(CONFIG_ERRORS) as error:
        compose_config(override)
    assert one_line(error.value).startswith(line)
    assert "\n" not in one_line(error.value)


def test_an_interpolation_of_a_missing_key_is_a_config_error(compose_config):
    # `${...}` is resolved only when validated: the error names the field, not OmegaConf's node.
    with pytest.raises(ConfigError, match=r"^seed is not allowed: Interpolation key 'nope' not"):
        validate(compose_config("seed=${nope}"))


def test_epochs_times_rows_is_bounded_so_training_fits_in_memory(compose_config):
    validate(compose_config("dataset.n_inputs=10", "trainer.epochs=9765"))  # 9,999,360 rows
    with pytest.raises(ConfigError, match=r"^trainer.epochs=2000 is not allowed: at most 152 "):
        validate(compose_config("dataset.n_inputs=16"))
