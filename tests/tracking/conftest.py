"""Fixtures of the tracking tests: the SQL stores the bulk writer is tested on."""

from collections.abc import Iterator

import mlflow
import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def store_uri(request: pytest.FixtureRequest) -> Iterator[str]:
    """An SQLite store in tmp_path, or a database of the module's PostgreSQL cluster; MLflow is
    set to it for the test only (the cluster ends with its module)."""
    previous = mlflow.get_tracking_uri()
    if request.param == "sqlite":
        uri = request.getfixturevalue("tracking_uri")
    else:
        uri = request.getfixturevalue("postgres_uri")
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(previous)
