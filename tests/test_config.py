"""Every config composes and validates; a bad value is refused with one clear line."""

import itertools

import pytest
from omegaconf.errors import ConfigAttributeError, ValidationError

from gatelab.config import ConfigError, validate
from tests.conftest import CONFIG_DIR


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONFIG_DIR / group).glob("*.yaml"))


def test_groups_have_the_options_the_readme_lists():
    assert options("dataset") == ["and", "custom", "nand", "nor", "or", "xnor", "xor"]
    assert options("model") == ["mlp", "perceptron"]
    assert options("optimizer") == ["adam", "sgd"]
    assert options("trainer") == ["default"]


@pytest.mark.parametrize(
    ("dataset", "model", "optimizer"),
    itertools.product(options("dataset"), options("model"), options("optimizer")),
)
def test_every_group_combination_composes_and_validates(compose_config, dataset, model, optimizer):
    cfg = compose_config(f"dataset={dataset}", f"model={model}", f"optimizer={optimizer}")
    validate(cfg)
    assert cfg.optimizer._target_.endswith(optimizer.upper() if optimizer == "sgd" else "Adam")


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


def test_yaml_files_open_with_the_command_that_uses_them():
    for path in CONFIG_DIR.rglob("*.yaml"):
        lines = [line for line in path.read_text().splitlines() if line != "# @package _global_"]
        assert lines[0].startswith("# python src/train.py"), path


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "optimizer.learning_rate=-1",
            "optimizer.learning_rate=-1.0 is not allowed: a number greater than 0",
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


def test_misspelled_keys_and_wrong_types_fail_as_the_config_is_composed(compose_config):
    with pytest.raises(Exception) as error:
        compose_config("trainer.epoch=5")
    assert isinstance(error.value.__cause__, ConfigAttributeError)
    with pytest.raises(Exception) as error:
        compose_config("optimizer.learning_rate=fast")
    assert isinstance(error.value.__cause__, ValidationError)
