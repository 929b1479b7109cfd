"""A config runs only the project's code and only values training can use, checked up front.

Keys added with `+` meet the same schemas as the others; a `_target_` (code Hydra would run) is
never taken from the user; NaN, infinity, empty experiment names and networks too large for
memory are refused before TensorFlow is imported; and the error line survives any characters.
"""

import os
import subprocess

import keras
import pytest

from gatelab.config import keras_names, schemas, validate
from gatelab.config.checks import refuse_targets
from gatelab.errors import CONFIG_ERRORS, ConfigError, one_line
from tests.helpers import PYTHON, TRAIN_SCRIPT, run_train


def refusal(compose_config, *overrides: str) -> str:
    """The one line that refuses `overrides`, whether composing or validating them."""
    with pytest.raises(CONFIG_ERRORS) as error:
        validate(compose_config(*overrides))
    line = one_line(error.value)
    assert "\n" not in line
    return line


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            "+trainer.epoch=10",
            "trainer.epoch is not a field of trainer: did you mean trainer.epochs? "
            "allowed fields are epochs, batch_size,",
        ),
        ("+optimizer.lr=0.5", "optimizer.lr is not a field of optimizer: allowed fields are"),
        (
            "+optimizer.learning_rat=0.5",
            "optimizer.learning_rat is not a field of optimizer: did you mean "
            "optimizer.learning_rate?",
        ),
        ("+foo=bar", "foo is not a field of the config: allowed fields are dataset, model,"),
        ("+sed=1", "sed is not a field of the config: did you mean seed?"),
        ("+tracking.experiments=x", "tracking.experiments is not a field of tracking: did you"),
    ],
)
def test_a_key_added_with_plus_meets_the_schema_and_names_the_nearest_key(
    compose_config, override, line
):
    assert refusal(compose_config, override).startswith(line)


def test_a_misspelled_key_without_plus_names_the_nearest_key_too(compose_config):
    assert refusal(compose_config, "trainer.epoch=10").startswith(
        "trainer.epoch is not a field of trainer: did you mean trainer.epochs?"
    )


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            ["optimizer._target_=keras.optimizers.Adam"],
            "optimizer._target_='keras.optimizers.Adam' is not allowed: the option chosen sets "
            "it (keras.optimizers.SGD)",
        ),
        (["++model._target_=os.system"], "model._target_='os.system' is not allowed"),
        (
            ["dataset=custom", "dataset.inputs=[{_target_:os.system,_args_:[ls]}]"],
            "dataset.inputs[0]._target_ is not allowed: only the project's own factories",
        ),
        (["+optimizer.foo={_target_:os.system}"], "optimizer.foo is not a field of optimizer"),
    ],
)
def test_a_target_is_only_ever_the_schemas_own(compose_config, overrides, line):
    assert refusal(compose_config, *overrides).startswith(line)


@pytest.mark.parametrize(
    "arguments",
    [
        ["optimizer._target_=keras.optimizers.Adam"],
        ["~optimizer._target_"],
        ["+hydra.callbacks.x={_target_:os.system,_args_:[ls]}"],
        ["-m", "+a.b={c:1},[{d:{_target_:os.system}}]"],
    ],
)
def test_the_command_line_cannot_set_a_target_anywhere(arguments):
    # Checked before Hydra composes: it instantiates `hydra.callbacks` as it does.
    with pytest.raises(ConfigError, match=r"is not allowed: a _target_ names code to run"):
        refuse_targets(arguments)


def test_the_command_line_check_lets_every_other_override_through():
    refuse_targets(["-m", "dataset=glob(*)", "seed=range(3)", "x=interval(0,1)", "y={a:1}"])
    refuse_targets(["--cfg", "job", "tracking.experiment=my_target_experiment"])


def test_a_group_file_cannot_bring_a_target_of_its_own(compose_config, tmp_path):
    # The same check covers a YAML option someone adds to a group: only schema defaults pass.
    cfg = compose_config()
    cfg.optimizer._set_flag("struct", False)
    cfg.optimizer._target_ = "pathlib.Path.touch"
    with pytest.raises(ConfigError, match=r"^optimizer._target_='pathlib.Path.touch' is not"):
        validate(cfg)


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (["optimizer.learning_rate=inf"], "optimizer.learning_rate=inf is not allowed: a finite"),
        (["optimizer.learning_rate=nan"], "optimizer.learning_rate=nan is not allowed"),
        (["optimizer.momentum=nan"], "optimizer.momentum=nan is not allowed"),
        (["optimizer=adam", "optimizer.beta_1=nan"], "optimizer.beta_1=nan is not allowed"),
        (["optimizer=adam", "optimizer.epsilon=inf"], "optimizer.epsilon=inf is not allowed"),
        (
            ["dataset=custom", "dataset.inputs=[[nan],[1]]", "dataset.targets=[0,1]"],
            "dataset.inputs=[[nan], [1]] is not allowed: a list of rows of finite numbers",
        ),
        (
            ["dataset=custom", "dataset.inputs=[[0],[1]]", "dataset.targets=[0,-inf]"],
            "dataset.targets=[0, -inf] is not allowed: a list of finite numbers",
        ),
    ],
)
def test_nan_and_infinity_are_refused_by_the_schema(compose_config, overrides, line):
    assert refusal(compose_config, *overrides).startswith(line)


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("", "tracking.experiment='' is not allowed: a name of 1 to 256 printable characters"),
        ("'  '", "tracking.experiment='  ' is not allowed"),
        ("x" * 257, "tracking.experiment='xxxxxxxx"),
        ("'a\nb'", "tracking.experiment='a\\nb' is not allowed"),
    ],
)
def test_an_empty_over_long_or_multi_line_experiment_name_is_refused(compose_config, name, line):
    assert refusal(compose_config, f"tracking.experiment={name}").startswith(line)


def test_any_printable_experiment_name_up_to_mlflows_limit_is_taken(compose_config):
    validate(compose_config("tracking.experiment='実験🚀 xor'"))
    validate(compose_config("tracking.experiment=" + "x" * 256))


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            ["model.hidden_units=[100000000]"],
            "model.hidden_units=[100000000] is not allowed: 400,000,001 parameters for 2 "
            "inputs, at most 1,000,000",
        ),
        (["model.hidden_units=[1000,1000]"], "model.hidden_units=[1000, 1000] is not allowed"),
        (
            ["dataset.n_inputs=16", "trainer.epochs=100", "model.hidden_units=[200]"],
            "model.hidden_units=[200] is not allowed: 201 units on 65,536 rows",
        ),
        (["model.hidden_units=" + str([1] * 101).replace(" ", "")], "model.hidden_units has 101"),
    ],
)
def test_a_network_too_large_for_memory_is_refused(compose_config, overrides, line):
    assert refusal(compose_config, *overrides).startswith(line)


def test_the_largest_network_allowed_passes(compose_config):
    # One hidden layer of `units` on 2 inputs: (2 + 1) x units + (units + 1) x 1 parameters.
    units = (schemas.MAX_PARAMETERS - 1) // 4
    validate(compose_config(f"model.hidden_units=[{units}]"))
    assert refusal(compose_config, f"model.hidden_units=[{units + 1}]").startswith(
        f"model.hidden_units=[{units + 1}] is not allowed: 1,000,001 parameters"
    )


def test_the_activation_names_are_exactly_keras_activations():
    # Checked without Keras (which imports TensorFlow); this keeps the list true to Keras.
    helpers = {"get", "serialize", "deserialize"}
    public = {name for name in dir(keras.activations) if not name.startswith("_")} - helpers
    assert set(keras_names.ACTIVATIONS) == public
    for name in keras_names.ACTIVATIONS:
        assert callable(keras.activations.get(name))


def test_a_misspelled_activation_names_the_nearest(compose_config):
    assert refusal(compose_config, "model.activation=sigmod").endswith("(did you mean sigmoid?)")


@pytest.mark.parametrize("points", [-1, 100_001])
def test_max_loss_points_is_bounded(compose_config, points):
    assert refusal(compose_config, f"tracking.max_loss_points={points}").startswith(
        f"tracking.max_loss_points={points} is not allowed: an integer from 0"
    )


CHECK_WITHOUT_TENSORFLOW = """
import runpy, sys
sys.argv = ['train.py', *sys.argv[1:]]
try:
    runpy.run_path({script!r}, run_name='__main__')
except SystemExit as exit:
    print('exit:', exit.code)
print('imported:', sorted({{'tensorflow', 'keras'}} & set(sys.modules)))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("model.hidden_units=[100000000]", "400,000,001 parameters"),
        ("optimizer.learning_rate=inf", "a finite number greater than 0"),
        ("model.activation=sigmod", "did you mean sigmoid?"),
        ("trainer.epochs=0", "at least 1"),
        ("+trainer.epoch=10", "did you mean trainer.epochs?"),
        ("tracking.experiment=", "a name of 1 to 256"),
    ],
)
def test_bad_values_are_refused_before_tensorflow_is_imported(tmp_path, override, words):
    script = CHECK_WITHOUT_TENSORFLOW.format(script=str(TRAIN_SCRIPT))
    result = subprocess.run(
        [PYTHON, "-c", script, override],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    )
    assert "exit: 2" in result.stdout, result.stderr
    assert "imported: []" in result.stdout
    assert words in result.stderr
    # Nothing was created: no store, no run.
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_a_target_in_a_group_is_never_executed(tmp_path):
    victim = tmp_path / "created_by_the_config"
    for override in (
        f"+optimizer.foo={{_target_:pathlib.Path.touch,_args_:[{victim}]}}",
        f"+hydra.callbacks.touch={{_target_:pathlib.Path.touch,_args_:[{victim}]}}",
    ):
        result = run_train(tmp_path, override)
        assert result.returncode == 2, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and "_target_" in line
        assert not victim.exists()
    assert not (tmp_path / "mlflow.db").exists()


def error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    return line


@pytest.mark.slow
@pytest.mark.parametrize("encoding", [None, "ascii"])
def test_the_error_line_prints_any_value_in_any_locale(tmp_path, encoding):
    environment = {
        **os.environ,
        "LC_ALL": "C",
        "LANG": "C",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    environment.pop("PYTHONIOENCODING", None)
    environment.pop("HYDRA_FULL_ERROR", None)
    if encoding:
        environment["PYTHONIOENCODING"] = encoding
    for override, words in [
        ("model.activation=sigmoïd", "is not a valid override: quote"),
        ("tracking.experiment=実験🚀", "is not a valid override: quote"),
        ("model.activation='sigmoïd'", "is not allowed: use a Keras activation name"),
        ("tracking.experiment='実験\n🚀'", "is not allowed: a name of 1 to 256"),
    ]:
        result = subprocess.run(
            [PYTHON, str(TRAIN_SCRIPT), override],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            timeout=300,
        )
        stderr = result.stderr.decode("utf-8")
        line = error_line(subprocess.CompletedProcess(result.args, result.returncode, "", stderr))
        assert words in line
        # The value itself, or its escape when stderr cannot encode it.
        assert "sigmo" in line or "\\u5b9f" in line or "実験" in line
        assert "Traceback" not in stderr
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "sweep", ["tracking.experiment=expA,expB", "tracking.uri=sqlite:///a.db,sqlite:///b.db"]
)
def test_sweeping_tracking_is_refused_before_the_store_is_created(tmp_path, sweep):
    line = error_line(run_train(tmp_path, "-m", "seed=0,1", sweep))
    assert line.startswith(f"error: {sweep.partition('=')[0]} cannot be swept")
    assert list(tmp_path.iterdir()) == []
