"""Shared fixtures: configs composed with Hydra's compose API, MLflow stores in tmp_path."""

import contextlib
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import gatelab.engine.backend  # noqa: F401  (imports TensorFlow quietly before anything else)
from gatelab import stopping
from gatelab.config import register_configs
from gatelab.tracking import store
from tests.helpers import CONFIG_DIR, copy_store, postgres_database

register_configs()


@pytest.fixture
def compose_config() -> Callable[..., DictConfig]:
    """Compose `conf/config.yaml` with overrides, as `python src/train.py OVERRIDES` would."""

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose("config", overrides=list(overrides))

    return _compose


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new SQLite MLflow store, made once per test process as a first run makes one: MLflow's
    migrations take about 2 s a store, a copy of this one (`tracking_uri`) a few milliseconds."""
    folder = tmp_path_factory.mktemp("store-template")
    path = folder / "mlflow.db"
    # MLflow resolves the Default experiment's artifact folder against the working directory.
    with contextlib.chdir(folder), store.prepared(f"sqlite:///{path}"):
        pass
    # Its write-ahead log folded in: the file alone is the whole store, to be copied.
    store.fold_log(path)
    return path


@pytest.fixture
def fresh_tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An SQLite MLflow store in tmp_path that does not exist yet, for the tests of its creation
    (or of refusals that must create none); tmp_path is the working directory (artifacts,
    outputs)."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    yield uri
    mlflow.set_tracking_uri(previous)


@pytest.fixture
def tracking_uri(fresh_tracking_uri: str, store_template: Path, tmp_path: Path) -> str:
    """An SQLite MLflow store in tmp_path, already made (a copy of `store_template`, as a first
    run would have made it there); tmp_path is the working directory (artifacts, outputs)."""
    copy_store(store_template, tmp_path)
    return fresh_tracking_uri


@pytest.fixture(scope="module")
def postgres_uri() -> Iterator[str]:
    """A throwaway PostgreSQL cluster with an empty database `mlflow`, for one test module."""
    with postgres_database() as uri:
        yield uri


@pytest.fixture
def stop_handlers() -> Iterator[None]:
    """gatelab's stop handlers in this process; after the test, pytest's own back and no stop
    noted (a stop a test sent would otherwise make a later test's writer take a dead writer
    process for the stop's, and raise KeyboardInterrupt in the test process)."""
    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    stopping.install()
    yield
    for number, handler in before.items():
        signal.signal(number, handler)
    stopping._received.clear()
