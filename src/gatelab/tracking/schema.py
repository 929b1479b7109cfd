"""A store's MLflow schema: its tables and version, against this MLflow's.

MLflow refuses a database of another schema version with a paragraph, and from a job with a
traceback; gatelab says it in one line, exit 2, with what to do: `mlflow db upgrade` for an older
schema, the MLflow that made it for a newer one (`store.check` for a local store, `schema_error`
for MLflow's own refusal of a server's database).
"""

import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import mlflow

from gatelab.errors import StoreError
from gatelab.redaction import redact

# MLflow's words when a database's schema is not its own (`mlflow.store.db.utils`).
_MLFLOW_REFUSAL = re.compile(r"Detected out-of-date database schema \(found version (\w+)")


@dataclass(frozen=True)
class SchemaState:
    """What an SQLite store holds of MLflow's schema: its tables, its version, its runs."""

    tables: set[str]
    version: str | None
    runs: int

    @property
    def complete(self) -> bool:
        """Every MLflow table and a schema version: not a half-created store."""
        from mlflow.store.db.base_sql_model import Base

        return bool(self.version) and set(Base.metadata.tables) <= self.tables


def read_only(path: Path) -> sqlite3.Connection:
    # Read-only, so that checking a file never creates one.
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)


def schema_state(path: Path) -> SchemaState:
    """The SQLite store `path`'s tables, schema version and number of runs."""
    try:
        with closing(read_only(path)) as database:
            tables = {row[0] for row in database.execute("select name from sqlite_master")}
            version = None
            if "alembic_version" in tables:
                row = database.execute("select version_num from alembic_version").fetchone()
                version = row[0] if row else None
            runs = 0
            if "runs" in tables:
                runs = database.execute("select count(*) from runs").fetchone()[0]
    except sqlite3.Error as error:
        raise StoreError(f"{path} is not an SQLite database ({error})") from error
    return SchemaState(tables, version, runs)


def version_problem(found: str, uri: str) -> str | None:
    """Why this MLflow cannot use the store `uri` of schema version `found`; None if it can."""
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError
    from mlflow.store.db.utils import _get_alembic_config

    scripts = ScriptDirectory.from_config(_get_alembic_config(db_url=""))
    expected = scripts.get_current_head()
    if found == expected:
        return None
    try:
        scripts.get_revision(found)
    except CommandError:
        return (
            f"its schema, version {found}, is not one MLflow {mlflow.__version__} knows (a newer "
            "MLflow made it?); use that MLflow, or set tracking.uri to another store"
        )
    return (
        f"its schema, version {found}, is older than MLflow {mlflow.__version__}'s "
        f"({expected}); take a backup, then run: mlflow db upgrade {redact(uri)}"
    )


def schema_error(error: BaseException) -> StoreError | None:
    """MLflow's refusal of a database of another schema version (a server's database, which
    `store.check` does not open) as one line; None for any other error."""
    from mlflow.exceptions import MlflowException

    found = _MLFLOW_REFUSAL.match(str(error))
    if not isinstance(error, MlflowException) or found is None:
        return None
    uri = mlflow.get_tracking_uri()
    problem = version_problem(found[1], uri) or str(error).splitlines()[0]
    return StoreError(f"the store {redact(uri)!r} cannot be used: {problem}")
