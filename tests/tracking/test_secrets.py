"""No secret leaves the process: credentials in `tracking.uri` are nowhere in the store, the
artifacts, the output folders or the console; nor are MLflow's credential variables."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from gatelab.redaction import redact, redact_files
from gatelab.tracking import writer
from tests.helpers import PYTHON, TRAIN_SCRIPT, mlflow_server

QUICK = ["trainer.epochs=50", "trainer.print_every=0"]
PASSWORD = "s3cret-in-the-uri"
ENV_PASSWORD = "s3cret-in-the-environment"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tracking.uri=http://user:pw@127.0.0.1:5000", "tracking.uri=http://***@127.0.0.1:5000"),
        ("https://token@host/mlflow", "https://***@host/mlflow"),
        # An unescaped `@` in the password, and Hydra's escaped `:` (override_dirname, its log).
        ("http://user:p@ss@host:5000", "http://***@host:5000"),
        (
            "seed=1,tracking.uri=http\\://user\\:pw@host\\:5000",
            "seed=1,tracking.uri=http\\://***@host\\:5000",
        ),
        ("['tracking.uri=http\\\\://u\\\\:pw@h']", "['tracking.uri=http\\\\://***@h']"),
        ("postgresql://mlflow:pw@db:5432/mlflow", "postgresql://***@db:5432/mlflow"),
        (
            "https://host/?access_token=abc&experiment=1&password=def",
            "https://host/?access_token=***&experiment=1&password=***",
        ),
        ("sqlite:///mlflow.db and mail@example.com", "sqlite:///mlflow.db and mail@example.com"),
        ("http://host:5000/path/a@b", "http://host:5000/path/a@b"),
    ],
)
def test_redact_removes_credentials_of_any_uri_and_nothing_else(text, expected):
    assert redact(text) == expected


def test_config_files_holding_a_credential_are_rewritten_without_it(tmp_path):
    holding = tmp_path / "overrides.yaml"
    holding.write_text("- tracking.uri=http://user:pw@host:5000\n- seed=1\n")
    clean = tmp_path / "config.yaml"
    clean.write_text("seed: 1\n")
    before = clean.stat().st_mtime_ns
    redact_files([holding, clean, tmp_path / "missing.yaml"])
    assert holding.read_text() == "- tracking.uri=http://***@host:5000\n- seed=1\n"
    assert clean.stat().st_mtime_ns == before


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, store_template: Path
) -> Iterator[tuple[str, Path]]:
    """A local `mlflow server` (it ignores credentials) and the folder of its store."""
    directory = tmp_path_factory.mktemp("server")
    with mlflow_server(directory, store_template=store_template) as uri:
        yield uri, directory


def run_with_credentials(workdir: Path, uri: str, *arguments: str) -> str:
    """`python src/train.py` with credentials in the URI and in MLflow's variables; its console."""
    host = uri.removeprefix("http://")
    environment = {
        **{key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"},
        "MLFLOW_TRACKING_USERNAME": "alice",
        "MLFLOW_TRACKING_PASSWORD": ENV_PASSWORD,
    }
    result = subprocess.run(
        [
            PYTHON,
            str(TRAIN_SCRIPT),
            *arguments,
            f"tracking.uri=http://alice:{PASSWORD}@{host}",
            *QUICK,
        ],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def files_holding(folder: Path, secrets: list[str]) -> list[str]:
    """Every file under `folder` whose bytes contain one of `secrets`."""
    return [
        f"{path}: {secret}"
        for path in folder.rglob("*")
        if path.is_file()
        for secret in secrets
        if secret.encode() in path.read_bytes()
    ]


@pytest.mark.slow
@pytest.mark.parametrize("arguments", [[], ["-m", "seed=1,2"]], ids=["run", "sweep"])
def test_credentials_are_in_no_store_artifact_output_or_console(server, tmp_path, arguments):
    uri, server_dir = server
    console = run_with_credentials(tmp_path, uri, *arguments)
    secrets = [PASSWORD, ENV_PASSWORD]
    assert [secret for secret in secrets if secret in console] == []
    assert files_holding(server_dir, secrets) == []
    assert files_holding(tmp_path, secrets) == []

    # What was searched is there: the runs, their config files, the redacted URI.
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("gatelab")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    mine = [run for run in runs if str(tmp_path) in run.data.tags.get("hydra.output_dir", "")]
    assert len(mine) == (2 if arguments else 1)
    for run in mine:
        # A sweep's job sees its overrides as Hydra escapes them: `http\://...`.
        overrides = run.data.tags["hydra.overrides"].replace("\\", "")
        assert "tracking.uri=http://***@127.0.0.1:" in overrides
        files = {artifact.path for artifact in client.list_artifacts(run.info.run_id, "config")}
        assert {"config/config.yaml", "config/hydra.yaml", "config/overrides.yaml"} <= files
    assert f"open http://***@{uri.removeprefix('http://')}" in console
    assert len(list(tmp_path.rglob(".hydra/hydra.yaml"))) == len(mine)


@pytest.mark.slow
def test_a_vectorized_sweep_leaks_no_credential_from_any_process(server, tmp_path):
    # `writer.PARALLEL_FROM` jobs, the fewest that spawned writer processes write (a child
    # takes about 0.1 s through the server).
    jobs = writer.PARALLEL_FROM
    uri, server_dir = server
    console = run_with_credentials(
        tmp_path, uri, "-m", "hydra/sweeper=vectorized", f"seed=range({jobs})"
    )
    secrets = [PASSWORD, ENV_PASSWORD]
    assert [secret for secret in secrets if secret in console] == []
    assert files_holding(server_dir, secrets) == []
    assert files_holding(tmp_path, secrets) == []
    # MLflow's "View run ... at <server>" for the sweep and the run pointing to its own
    # experiment at most, not a line per child.
    assert console.count("View run") <= 2
    client = MlflowClient(uri)
    # A sweep this big has an experiment of its own (`tracking.own_experiment_above`); the
    # server is the module's, and the other tests' runs are in `gatelab`.
    own = [
        experiment.experiment_id
        for experiment in client.search_experiments()
        if experiment.name not in ("gatelab", "Default")
    ]
    runs = client.search_runs(own, max_results=5000)
    children = [run for run in runs if "hydra.job.num" in run.data.tags]
    assert len(children) == jobs
    assert {child.info.status for child in children} == {"FINISHED"}
    assert len(list(tmp_path.rglob(".hydra/overrides.yaml"))) == jobs


@pytest.mark.slow
def test_a_search_leaks_no_credential_into_its_study_runs_or_files(server, tmp_path):
    # The study's default name is the command's overrides, tracking.uri included.
    uri, server_dir = server
    console = run_with_credentials(
        tmp_path,
        uri,
        "-m",
        "hydra/sweeper=search",
        "seed=range(3)",
        "optimizer.learning_rate=interval(0.05, 2)",
        "hydra.sweeper.n_trials=2",
    )
    secrets = [PASSWORD, ENV_PASSWORD]
    assert [secret for secret in secrets if secret in console] == []
    assert files_holding(server_dir, secrets) == []
    # The Optuna storage (optuna.db) and the sweep folder are in the working directory.
    assert (tmp_path / "optuna.db").is_file()
    assert files_holding(tmp_path, secrets) == []
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("gatelab")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    (study,) = [run for run in runs if str(tmp_path) in run.data.tags.get("sweep.dir", "")]
    assert "tracking.uri=http://***@127.0.0.1:" in study.data.tags["optuna.study_name"]
