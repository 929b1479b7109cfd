"""The MLflow store: checked before anything runs, created safely, and cleaned up after crashes.

`check` runs in the launching process, before TensorFlow is imported: a malformed URI, a server
that does not answer or an SQLite file that cannot be used is one line, in seconds. A local
SQLite store is created under an exclusive lock (`mlflow.db.lock` beside it) in a temporary file
renamed into place, so a first run that is interrupted, or two started together, never leave a
half-created store; one left by an older version or by MLflow itself is rebuilt if it holds no
runs. It is then kept in SQLite's write-ahead-log mode, where a run's writes are quicker. Every
run records the host and process that run it, so runs left RUNNING by a process that died
(SIGKILL, a crashed node) can be marked KILLED afterwards (`python -m gatelab.runs`).
"""

import atexit
import fcntl
import logging
import os
import socket
import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import mlflow
import requests
import sqlalchemy
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from gatelab.errors import StoreError
from gatelab.redaction import redact
from gatelab.tracking.schema import schema_state, version_problem
from gatelab.tracking.statuses import KILLED

log = logging.getLogger(__name__)

# MLflow retries a failed request 7 times, waiting up to 120 s for each answer: about five
# minutes before a dead server is reported. A variable the user set wins.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
# The check before a run: seconds to connect to a server (a dead one is reported in that
# time), and to wait for the answer of one that accepted (a busy machine may take a while).
PROBE_TIMEOUT = 5.0
ANSWER_TIMEOUT = 30.0
DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
HOST_TAG = "gatelab.host"
PID_TAG = "gatelab.pid"


def check(uri: str | None) -> None:
    """Refuse, in one line, a tracking URI that is malformed or a store that cannot be used.

    Args:
        uri: `tracking.uri`; None means MLflow's default (`MLFLOW_TRACKING_URI`, else
            `sqlite:///mlflow.db` in the working directory).
    """
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    named = uri_source(uri)
    uri = uri or mlflow.get_tracking_uri()
    problem = _problem(uri)
    if problem:
        raise StoreError(f"{named.format(uri=repr(redact(uri)))} cannot be used: {problem}")


def uri_source(uri: str | None) -> str:
    """How an error names the store of `tracking.uri` (None: MLflow's choice), `{uri}` to fill:
    where the URI came from, in MLflow's order (`mlflow.get_tracking_uri`)."""
    from mlflow.environment_variables import MLFLOW_TRACKING_URI
    from mlflow.tracking._tracking_service import utils

    if uri:
        return "tracking.uri={uri}"
    if getattr(utils, "_tracking_uri", None):
        return "the tracking URI {uri} this process set (mlflow.set_tracking_uri)"
    if MLFLOW_TRACKING_URI.get():
        return "MLFLOW_TRACKING_URI={uri}"
    return "MLflow's default store {uri} (neither tracking.uri nor MLFLOW_TRACKING_URI is set)"


def _problem(uri: str) -> str | None:
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    schemes = sorted(scheme for scheme in _tracking_store_registry._registry if scheme)
    try:
        parts = urllib.parse.urlsplit(uri)
        port = parts.port
    except ValueError as error:
        return f"not a URI ({error})"
    if not parts.scheme:
        first = Path(uri).parts[0] if uri else ""
        if first.rstrip(":") in schemes:
            return f"it reads as a local folder named {first!r}; a URI is scheme://..., such as http://host:5000"
        return None
    if parts.scheme not in schemes:
        return f"MLflow has no store for scheme {parts.scheme!r}; use one of {', '.join(schemes)}"
    if parts.scheme == "sqlite":
        path = sqlite_path(uri)
        if path is None:
            return "an SQLite store is sqlite:///relative/path.db or sqlite:////absolute/path.db"
        return _sqlite_problem(path)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            return f"no host; a server is {parts.scheme}://host:port"
        return _server_problem(uri, parts.hostname, port)
    if parts.scheme in DATABASE_PORTS:
        if not parts.hostname:
            return f"no host; a database is {parts.scheme}://user@host:port/database"
        return _database_problem(parts.hostname, port or DATABASE_PORTS[parts.scheme])
    return None


def _server_problem(uri: str, host: str, port: int | None) -> str | None:
    try:
        # MLflow's server answers OK; an authenticating proxy may refuse, MLflow reports that.
        response = requests.get(
            f"{uri.rstrip('/')}/health", timeout=(PROBE_TIMEOUT, ANSWER_TIMEOUT)
        )
        if response.status_code not in (200, 401, 403):
            reason = f"GET /health answered HTTP {response.status_code}"
        else:
            return None
    except requests.ConnectTimeout:
        reason = f"no connection within {PROBE_TIMEOUT:g} s"
    except requests.Timeout:
        reason = f"no answer within {ANSWER_TIMEOUT:g} s"
    except requests.exceptions.SSLError:
        reason = "its TLS handshake failed"
    except requests.ConnectionError:
        reason = "cannot connect"
    except requests.RequestException as error:
        return f"not a server address ({type(error).__name__})"
    address = f"{host}:{port}" if port else host
    return (
        f"no MLflow server answers at {address} ({reason}); start one "
        f"(mlflow server --host {host} --port {port or 5000}) or set tracking.uri to a running one"
    )


def _database_problem(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT):
            return None
    except OSError as error:
        reason = error.strerror or error
        return f"no database answers at {host}:{port} ({reason}); start it or fix the address"


def sqlite_path(uri: str) -> Path | None:
    """The file of an `sqlite:///` URI (relative to the working directory unless absolute)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme != "sqlite" or parts.netloc or not parts.path.startswith("/"):
        return None
    path = urllib.parse.unquote(parts.path[1:])
    if not path or path == ":memory:":
        return None
    return Path(path)


def _sqlite_problem(path: Path) -> str | None:
    if path.is_dir():
        return f"{path} is a folder, not an SQLite file"
    if not path.exists():
        folder = next(parent for parent in path.absolute().parents if parent.exists())
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            return f"{path} cannot be created: {folder} is not a writable folder"
        return None
    if not os.access(path, os.R_OK | os.W_OK):
        return f"{path} is not readable and writable by this user; fix its permissions"
    if not os.access(path.absolute().parent, os.W_OK | os.X_OK):
        folder = path.absolute().parent
        return f"{folder} is read-only, and SQLite writes its journal beside {path.name}"
    try:
        version = schema_state(path).version
    except StoreError as not_sqlite:
        return f"{not_sqlite}; move it or set tracking.uri elsewhere"
    # Without a version: new, or half-created, which `prepared` rebuilds or refuses.
    return version_problem(version, f"sqlite:///{path}") if version else None


@contextmanager
def prepared(uri: str) -> Iterator[None]:
    """Hold the store's creation lock, creating a local SQLite store first if it is not whole."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    install_sqlite_settings()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as lock:
        # The lock goes when the process does, SIGKILL included.
        fcntl.flock(lock, fcntl.LOCK_EX)
        _make_whole(path)
        write_ahead(path)
        _fold_log_at_exit(path)
        yield


def _fold_log_at_exit(path: Path) -> None:
    """When this process ends, fold the write-ahead log back into the store's file, so that
    `mlflow.db` alone (copied, backed up, attached) holds every run this process wrote."""
    if path.absolute() not in _FOLDED_AT_EXIT:
        _FOLDED_AT_EXIT.add(path.absolute())
        atexit.register(fold_log, path.absolute())


_FOLDED_AT_EXIT: set[Path] = set()


def fold_log(path: Path) -> None:
    """Checkpoint the store's write-ahead log into its file and empty it (SQLite's TRUNCATE).
    A store deleted meanwhile (a temporary folder) is left gone, not made again empty."""
    if not path.exists():
        return
    try:
        with closing(sqlite3.connect(path, timeout=30)) as database:
            (busy, _, _) = database.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            log.warning(
                "%s: a reader (mlflow ui?) kept the latest writes in %s-wal; copy both files",
                path,
                path.name,
            )
    except sqlite3.Error as error:
        log.warning("%s: its write-ahead log was not folded in (%s)", path, error)


def write_ahead(path: Path) -> None:
    """Put the store in SQLite's write-ahead-log mode, where a commit is one append to
    `mlflow.db-wal`: a sweep child's writes take a quarter to a half less time (see
    benchmarks/bench_child_logging.py), and readers (`mlflow ui`) no longer block writers.

    The mode stays with the file. It needs every process using the store on this machine, which
    is what a local store is for (a team on several machines uses a server). A store busy
    elsewhere right now is left as it is, and switched by a later run.
    """
    try:
        with closing(sqlite3.connect(path, timeout=0.5)) as database:
            database.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as error:
        log.debug("%s stays in its journal mode for now: %s", path, error)


def install_sqlite_settings() -> None:
    """Give every new SQLite connection of this process's SQLAlchemy engines (MLflow's) the
    store's settings (`_sync_at_checkpoints`); called before MLflow first connects."""
    if not sqlalchemy.event.contains(sqlalchemy.engine.Engine, "connect", _sync_at_checkpoints):
        sqlalchemy.event.listen(sqlalchemy.engine.Engine, "connect", _sync_at_checkpoints)


def _sync_at_checkpoints(connection: Any, _: Any) -> None:
    """In WAL mode, `synchronous=NORMAL` (SQLite's advice): the file stays whole whatever
    happens, and a commit is durable once the process returns; only a power cut or a crash of
    the machine can lose the latest commits. In any other mode MLflow's default (FULL) stays."""
    if not isinstance(connection, sqlite3.Connection):
        return
    (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    if mode == "wal":
        connection.execute("PRAGMA synchronous=NORMAL")


def _make_whole(path: Path) -> None:
    """Create the SQLite store, or rebuild a half-created one, in a file renamed into place."""
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    for leftover in path.parent.glob(f"{path.name}.new-*"):
        leftover.unlink(missing_ok=True)
    if path.exists() and path.stat().st_size > 0:
        state = schema_state(path)
        if state.complete:
            return
        if state.runs:
            raise StoreError(
                f"{path} holds {state.runs} runs but not all of MLflow's tables; take a backup, "
                f"then run: mlflow db upgrade sqlite:///{path}"
            )
        log.warning("%s is half-created (an interrupted first run?), without runs: rebuilt", path)
    new = path.absolute().with_name(f"{path.name}.new-{os.getpid()}")
    SqlAlchemyStore(f"sqlite:///{new}", DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH)
    # MLflow keeps an engine per URI, whose connections would still see the files replaced here.
    for uri in list(SqlAlchemyStore._engine_map):
        if sqlite_path(uri) is not None and sqlite_path(uri).absolute() in (new, path.absolute()):
            SqlAlchemyStore._engine_map.pop(uri).dispose()
    # A journal left by the old file must not be replayed into the new one.
    for suffix in ("-journal", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    os.replace(new, path)


def process_tags() -> dict[str, str]:
    """Where a run runs, so that a run left RUNNING by a dead process can be found."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # A zombie has ended; its parent has not collected it yet.
            if stat.read().rpartition(")")[2].split()[0] == "Z":
                return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_runs(client: MlflowClient, experiment_ids: list[str]) -> list[Run]:
    """RUNNING runs started on this host by a process that no longer exists."""
    running = client.search_runs(
        experiment_ids, filter_string="attributes.status = 'RUNNING'", max_results=50000
    )
    host = socket.gethostname()
    return [
        run
        for run in running
        if run.data.tags.get(HOST_TAG) == host
        and run.data.tags.get(PID_TAG, "").isdigit()
        and not process_alive(int(run.data.tags[PID_TAG]))
    ]


def mark_killed(client: MlflowClient, run: Run) -> None:
    client.set_tag(run.info.run_id, "failure_reason", "process died")
    client.set_terminated(run.info.run_id, KILLED)


def analyze(uri: str) -> bool:
    """Run SQLite's ANALYZE on a SQLite store so its metric reads use the right index.

    MLflow never runs it: without statistics SQLite reads a run's metric history through an
    index that scans every `loss` row of the store. ANALYZE writes only SQLite's own
    `sqlite_stat1` table, nothing of MLflow's. Returns whether the store was a SQLite one.
    """
    if not uri.startswith("sqlite:"):
        return False
    engine = sqlalchemy.create_engine(uri)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return True
