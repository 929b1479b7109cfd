"""Shared fixtures: configs composed with Hydra's compose API, MLflow stores in tmp_path."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import gatelab.backend  # noqa: F401  (imports TensorFlow quietly before anything else does)
from gatelab.config import register_configs

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "conf"
TRAIN_SCRIPT = REPO / "src" / "train.py"
PYTHON = sys.executable

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


def run_train(workdir: Path, *arguments: str) -> subprocess.CompletedProcess:
    """`python src/train.py ARGUMENTS` in `workdir`, tracking to `workdir/mlflow.db`."""
    environment = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    environment.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [PYTHON, str(TRAIN_SCRIPT), *arguments],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def mlflow_server(directory: Path) -> Iterator[str]:
    """`mlflow server` on localhost, its store and proxied artifacts in `directory`; its URI."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            str(Path(PYTHON).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{directory / 'mlflow.db'}",
            "--artifacts-destination",
            str(directory / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, "mlflow server exited"
            assert time.monotonic() < deadline, "mlflow server did not come up"
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
