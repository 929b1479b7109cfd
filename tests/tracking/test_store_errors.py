"""A store that cannot be used is named as the user chose it, and one of another MLflow schema is
one line and exit 2, as every store error (issue 26 item 11)."""

import sqlite3
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.tracking._tracking_service import utils

from gatelab import cli
from gatelab.errors import StoreError
from gatelab.tracking import store
from gatelab.tracking.schema import schema_error
from tests.helpers import run_train

# MLflow 2.22's schema (its alembic head): older than the installed MLflow's, which knows it.
OLDER_SCHEMA = "0584bdc529eb"
# A schema the installed MLflow does not know: a newer MLflow's.
NEWER_SCHEMA = "ffffffffffff"


def store_of_schema(path: Path, schema: str | None = None) -> str:
    """An SQLite store made by the installed MLflow at `path`, its version set to `schema`."""
    SqlAlchemyStore(f"sqlite:///{path}", str(path.parent / "mlruns")).engine.dispose()
    if schema is not None:
        with sqlite3.connect(path) as database:
            database.execute("update alembic_version set version_num = ?", (schema,))
    return f"sqlite:///{path}"


@pytest.fixture
def unset_uri(monkeypatch, tmp_path):
    """Neither `MLFLOW_TRACKING_URI` nor `mlflow.set_tracking_uri`: MLflow's default store,
    `mlflow.db` in tmp_path (the working directory)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(utils, "_tracking_uri", None)


def refusal(uri: str | None) -> str:
    with pytest.raises(StoreError) as refused:
        store.check(uri)
    (line,) = str(refused.value).splitlines()
    return line


def test_the_default_store_is_named_as_mlflows_default_not_as_a_variable(unset_uri, tmp_path):
    (tmp_path / "mlflow.db").write_text("not a database")
    default = repr(mlflow.get_tracking_uri())
    assert refusal(None).startswith(
        f"MLflow's default store {default} (neither tracking.uri nor MLFLOW_TRACKING_URI is set) "
        "cannot be used: "
    )


def test_a_store_is_named_by_where_its_uri_came_from(unset_uri, monkeypatch, tmp_path):
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    (tmp_path / "runs.db").write_text("not a database")
    assert refusal(uri).startswith(f"tracking.uri={uri!r} cannot be used: ")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert refusal(None).startswith(f"MLFLOW_TRACKING_URI={uri!r} cannot be used: ")
    monkeypatch.setattr(utils, "_tracking_uri", uri)  # as mlflow.set_tracking_uri(uri) does
    assert refusal(None).startswith(
        f"the tracking URI {uri!r} this process set (mlflow.set_tracking_uri) cannot be used: "
    )


def test_a_store_of_an_older_schema_is_one_line_saying_to_upgrade_it(tmp_path):
    uri = store_of_schema(tmp_path / "mlflow.db", OLDER_SCHEMA)
    assert refusal(uri) == (
        f"tracking.uri={uri!r} cannot be used: its schema, version {OLDER_SCHEMA}, is older than "
        f"MLflow {mlflow.__version__}'s ({current_schema()}); take a backup, then run: mlflow db "
        f"upgrade {uri}"
    )


def test_a_store_of_a_schema_this_mlflow_does_not_know_is_one_line(tmp_path):
    uri = store_of_schema(tmp_path / "mlflow.db", NEWER_SCHEMA)
    assert refusal(uri) == (
        f"tracking.uri={uri!r} cannot be used: its schema, version {NEWER_SCHEMA}, is not one "
        f"MLflow {mlflow.__version__} knows (a newer MLflow made it?); use that MLflow, or set "
        "tracking.uri to another store"
    )


def test_a_store_of_this_mlflows_schema_passes(tmp_path):
    store.check(store_of_schema(tmp_path / "mlflow.db"))


def current_schema() -> str:
    from mlflow.store.db.utils import _get_latest_schema_revision

    return _get_latest_schema_revision()


def mlflows_refusal(found: str) -> MlflowException:
    """What MLflow raises when it opens a database of schema `found` (a server's, say)."""
    return MlflowException(
        f"Detected out-of-date database schema (found version {found}, but expected "
        f"{current_schema()}). Take a backup of your database, then run 'mlflow db upgrade "
        "<database_uri>' to migrate your database to the latest schema. NOTE: schema migration "
        "may result in database downtime - please consult your database's documentation for "
        "more detail."
    )


def test_mlflows_refusal_of_a_database_is_one_line_exit_2(monkeypatch, capsys):
    uri = "postgresql://alice:secret@db.internal/mlflow"
    monkeypatch.setattr(utils, "_tracking_uri", uri)
    line = (
        "the store 'postgresql://***@db.internal/mlflow' cannot be used: its schema, version "
        f"{OLDER_SCHEMA}, is older than MLflow {mlflow.__version__}'s ({current_schema()}); take "
        "a backup, then run: mlflow db upgrade postgresql://***@db.internal/mlflow"
    )
    assert str(schema_error(mlflows_refusal(OLDER_SCHEMA))) == line
    assert schema_error(MlflowException("another error")) is None

    def open_the_store():
        raise mlflows_refusal(OLDER_SCHEMA)

    # The variables the command line sets for its process, restored after the test.
    for name in ("HYDRA_FULL_ERROR", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)

    with pytest.raises(SystemExit) as exited:
        cli.run_reporting_config_errors(open_the_store)
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {line}"]


@pytest.mark.slow
def test_a_run_on_an_older_default_store_is_one_line_exit_2_naming_it_truly(tmp_path):
    path = tmp_path / "mlflow.db"
    store_of_schema(path, OLDER_SCHEMA)
    before = path.read_bytes()
    result = run_train(tmp_path, "trainer.epochs=5", tracking_uri=None)
    assert result.returncode == 2, result.stderr[-3000:]
    uri = f"sqlite:///{path}"
    assert result.stderr.splitlines() == [
        f"error: MLflow's default store 'sqlite:///{path}' (neither tracking.uri nor "
        f"MLFLOW_TRACKING_URI is set) cannot be used: its schema, version {OLDER_SCHEMA}, is "
        f"older than MLflow {mlflow.__version__}'s ({current_schema()}); take a backup, then "
        f"run: mlflow db upgrade {uri}"
    ]
    assert path.read_bytes() == before
