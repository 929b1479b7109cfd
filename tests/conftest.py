"""Shared fixtures: configs composed with Hydra's compose API, MLflow stores in tmp_path."""

from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import gatelab.engine.backend  # noqa: F401  (imports TensorFlow quietly before anything else)
from gatelab.config import register_configs
from tests.helpers import CONFIG_DIR, postgres_database

register_configs()


@pytest.fixture
def compose_config() -> Callable[..., DictConfig]:
    """Compose `conf/config.yaml` with overrides, as `python src/train.py OVERRIDES` would."""

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose("config", overrides=list(overrides))

    return _compose


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite MLflow store in tmp_path, also the working directory (artifacts, outputs)."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    yield uri
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def postgres_uri() -> Iterator[str]:
    """A throwaway PostgreSQL cluster with an empty database `mlflow`, for one test module."""
    with postgres_database() as uri:
        yield uri
