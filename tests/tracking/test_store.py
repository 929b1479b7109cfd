"""The store: refused in one line before anything runs when it cannot be used, created whole
under interruption and concurrent first use, and runs of dead processes closed on demand."""

import os
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import mlflow
import pytest
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.tracking import MlflowClient

from gatelab import runs
from gatelab.errors import StoreError
from gatelab.tracking import store
from gatelab.tracking.experiment import configure
from tests.helpers import (
    PYTHON,
    all_runs,
    copy_store,
    free_port,
    run_train,
    run_trains_together,
    start_train,
    statuses_in_a_copy_of_the_store_file,
    store_client,
    train_environment,
)

QUICK = ["trainer.epochs=50", "trainer.print_every=0"]


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("notascheme://x", "no store for scheme 'notascheme'"),
        ("http//oops", "a local folder named 'http'"),
        ("http://", "no host"),
        ("http://host:port", "not a URI"),
        ("sqlite://mlflow.db", "sqlite:///relative/path.db"),
    ],
)
def test_a_malformed_uri_is_one_line_naming_it(uri, reason):
    with pytest.raises(StoreError) as error:
        store.check(uri)
    message = str(error.value)
    assert message.startswith(f"tracking.uri={uri!r} cannot be used: ")
    assert reason in message
    assert "\n" not in message


def test_a_server_that_does_not_answer_is_named_with_what_to_do(monkeypatch):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    port = free_port()
    with pytest.raises(StoreError) as error:
        store.check(f"http://user:pw@127.0.0.1:{port}")
    message = str(error.value)
    assert f"no MLflow server answers at 127.0.0.1:{port}" in message
    assert f"mlflow server --host 127.0.0.1 --port {port}" in message
    assert "pw" not in message
    # MLflow's own retries are bounded, unless the user chose otherwise.
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"


def test_a_file_that_is_not_sqlite_is_named_and_left_alone(tmp_path):
    path = tmp_path / "mlflow.db"
    path.write_bytes(b"not a database, a user's file" * 100)
    with pytest.raises(StoreError, match=f"{path} is not an SQLite database"):
        store.check(f"sqlite:///{path}")
    assert path.read_bytes() == b"not a database, a user's file" * 100


@pytest.mark.parametrize("denied", [os.R_OK, os.W_OK])
def test_a_store_file_this_user_cannot_read_or_write_is_named(tmp_path, monkeypatch, denied):
    path = tmp_path / "mlflow.db"
    SqlAlchemyStore(f"sqlite:///{path}", str(tmp_path / "mlruns")).engine.dispose()
    # Tests run as root, who may write any file: the permission is the kernel's answer for
    # a user who may not (`chmod 444` or a file of another user).
    access = os.access
    monkeypatch.setattr(
        os, "access", lambda name, mode: access(name, mode) and not (name == path and mode & denied)
    )
    with pytest.raises(StoreError) as error:
        store.check(f"sqlite:///{path}")
    assert str(error.value) == (
        f"tracking.uri='sqlite:///{path}' cannot be used: {path} is not readable and "
        "writable by this user; fix its permissions"
    )


def test_checking_a_new_store_creates_nothing(tmp_path):
    store.check(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    assert list(tmp_path.iterdir()) == []


def test_a_store_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="is not a writable folder"):
        store.check(f"sqlite:///{tmp_path / 'file' / 'mlflow.db'}")


def store_contents(path: Path) -> tuple[str, dict[str, list[tuple]]]:
    """An SQLite store's journal mode and every table's schema and rows, but times."""
    with closing(sqlite3.connect(path)) as database:
        (mode,) = database.execute("PRAGMA journal_mode").fetchone()
        tables = {}
        for name, sql in database.execute("select name, sql from sqlite_master order by name"):
            columns = [row[1] for row in database.execute(f"PRAGMA table_info('{name}')")]
            rows = database.execute(f"select * from '{name}'").fetchall() if columns else []
            kept = [index for index, column in enumerate(columns) if not column.endswith("_time")]
            # Line by line, in any order: MLflow's migrations order a table's constraints as a
            # set iterates.
            schema = sorted(line.strip().rstrip(",") for line in (sql or "").splitlines())
            tables[name] = [schema, sorted(tuple(row[index] for index in kept) for row in rows)]
    return mode, tables


def test_the_tests_copied_store_holds_what_a_new_store_made_in_its_folder_holds(
    fresh_tracking_uri, store_template, tmp_path
):
    # The `tracking_uri` fixture's copy stands for a store the first run would have made there.
    path = tmp_path / "mlflow.db"
    with store.prepared(fresh_tracking_uri):
        pass
    store.fold_log(path)
    made = store_contents(path)
    for leftover in tmp_path.glob("mlflow.db*"):
        leftover.unlink()
    copy_store(store_template, tmp_path)
    assert store_contents(path) == made
    assert made[1]["experiments"][1] == [
        (0, "Default", str(tmp_path / "mlruns" / "0"), "active", "default")
    ]


def half_created_store(path: Path) -> None:
    """What a first run killed during MLflow's migrations leaves: some tables, no version."""
    SqlAlchemyStore(f"sqlite:///{path}", str(path.parent / "mlruns")).engine.dispose()
    with sqlite3.connect(path) as database:
        database.execute("drop table alembic_version")
        database.execute("drop table evaluation_dataset_records")


def test_a_half_created_store_without_runs_is_rebuilt(fresh_tracking_uri, tmp_path):
    path = tmp_path / "mlflow.db"
    half_created_store(path)
    with pytest.raises(Exception, match="already exists|duplicate column"):
        # As MLflow itself fails on it, for every later run.
        SqlAlchemyStore(fresh_tracking_uri, str(tmp_path / "mlruns"))
    experiment_id = configure(fresh_tracking_uri, "gatelab")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_metric("loss", 0.5)
    assert MlflowClient(fresh_tracking_uri).get_run(run.info.run_id).data.metrics == {"loss": 0.5}
    # Nothing left of the rebuilding (beside the store: its lock, write-ahead log and index).
    assert {path.name for path in tmp_path.iterdir()} <= {
        "mlflow.db",
        "mlflow.db.lock",
        "mlflow.db-wal",
        "mlflow.db-shm",
    }


def test_a_store_writes_ahead_and_syncs_at_checkpoints_and_no_other_database_does(
    fresh_tracking_uri, tmp_path
):
    import sqlalchemy

    configure(fresh_tracking_uri, "gatelab")
    with closing(sqlite3.connect(tmp_path / "mlflow.db")) as database:
        assert database.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    # Any engine of this process, as MLflow's are: NORMAL (1) in WAL mode, else SQLite's FULL (2).
    for path, synchronous in ((tmp_path / "mlflow.db", 1), (other, 2)):
        engine = sqlalchemy.create_engine(f"sqlite:///{path}")
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA synchronous").fetchone() == (synchronous,)
        engine.dispose()


def test_a_half_created_store_holding_runs_is_refused_not_rebuilt(fresh_tracking_uri, tmp_path):
    path = tmp_path / "mlflow.db"
    half_created_store(path)
    with sqlite3.connect(path) as database:
        database.execute("insert into runs (run_uuid, experiment_id) values ('r1', 0)")
    with pytest.raises(StoreError, match="holds 1 runs .* mlflow db upgrade"):
        configure(fresh_tracking_uri, "gatelab")
    with sqlite3.connect(path) as database:
        assert database.execute("select run_uuid from runs").fetchall() == [("r1",)]


def test_runs_of_dead_processes_on_this_host_are_marked_killed_and_no_others(tracking_uri):
    ended = subprocess.Popen([PYTHON, "-c", "pass"])
    ended.wait()
    tags_by_name = {
        "dead": {
            store.HOST_TAG: store.process_tags()[store.HOST_TAG],
            store.PID_TAG: str(ended.pid),
        },
        "alive": store.process_tags(),
        "elsewhere": {store.HOST_TAG: "another-host", store.PID_TAG: str(ended.pid)},
        "untagged": {},
    }
    experiment_id = configure(tracking_uri, "gatelab")
    client = MlflowClient(tracking_uri)
    run_ids = {
        name: client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        for name, tags in tags_by_name.items()
    }
    assert runs.mark_dead_killed(tracking_uri, "gatelab", dry_run=True) == 1
    assert client.get_run(run_ids["dead"]).info.status == "RUNNING"
    assert runs.mark_dead_killed(tracking_uri, "gatelab", dry_run=False) == 1
    statuses = {name: client.get_run(run_id).info.status for name, run_id in run_ids.items()}
    assert statuses == {
        "dead": "KILLED",
        "alive": "RUNNING",
        "elsewhere": "RUNNING",
        "untagged": "RUNNING",
    }
    assert client.get_run(run_ids["dead"]).data.tags["failure_reason"] == "process died"


def store_runs(workdir: Path) -> list:
    # Tolerates a store that exists before its experiment does (a run killed in between).
    return all_runs(MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}"))


@pytest.mark.slow
def test_an_unreachable_server_is_one_line_and_exit_2_with_nothing_created(tmp_path):
    port = free_port()
    result = run_train(tmp_path, f"tracking.uri=http://127.0.0.1:{port}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: tracking.uri='http://127.0.0.1:{port}' cannot be used: no MLflow server answers "
        f"at 127.0.0.1:{port} (cannot connect); start one (mlflow server --host 127.0.0.1 "
        f"--port {port}) or set tracking.uri to a running one"
    ]
    sweep = run_train(tmp_path, "-m", "seed=1,2", f"tracking.uri=http://127.0.0.1:{port}")
    assert sweep.returncode == 2
    assert len(sweep.stderr.strip().splitlines()) == 1
    assert "Launching" not in sweep.stdout + sweep.stderr
    assert not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "multirun").exists()


@pytest.mark.slow
def test_two_runs_started_together_in_a_new_folder_both_land(tmp_path):
    # Two sweeps: tests/test_concurrent_sweeps.py.
    results = run_trains_together(
        tmp_path,
        *([f"seed={seed}", *QUICK] for seed in (1, 2)),
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
    found = store_runs(tmp_path)
    assert sorted(run.data.params["seed"] for run in found) == ["1", "2"]
    assert {run.info.status for run in found} == {"FINISHED"}


@pytest.mark.slow
def test_after_kill_9_the_next_command_works_and_the_dead_run_can_be_marked_killed(tmp_path):
    # Killed while the store is being created, on the very first run in the folder.
    first = start_train(tmp_path, *QUICK)
    while (
        not [path for path in tmp_path.glob("mlflow.db*") if path.suffix != ".lock"]
        and first.poll() is None
    ):
        time.sleep(0.005)
    first.kill()
    first.communicate()
    # Killed while training, its run RUNNING.
    second = start_train(tmp_path, "trainer.epochs=1000000", "trainer.print_every=0")
    # The event: its run is in the store, naming its process.
    while not [
        run
        for run in all_runs(store_client(tmp_path))
        if run.data.tags.get(store.PID_TAG) == str(second.pid)
    ]:
        assert second.poll() is None, second.communicate()
        time.sleep(0.2)
    second.kill()
    second.communicate()
    (left_running,) = store_runs(tmp_path)
    assert left_running.info.status == "RUNNING"
    assert left_running.data.tags[store.PID_TAG] == str(second.pid)

    result = run_train(tmp_path, "seed=3", *QUICK)
    assert result.returncode == 0, result.stderr[-3000:]
    marked = subprocess.run(
        [PYTHON, "-m", "gatelab.runs", "mark-dead-killed"],
        cwd=tmp_path,
        env=train_environment(f"sqlite:///{tmp_path / 'mlflow.db'}"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert marked.returncode == 0, marked.stderr
    assert f"run {left_running.info.run_id}" in marked.stdout
    statuses = {run.info.run_id: run.info.status for run in store_runs(tmp_path)}
    assert statuses.pop(left_running.info.run_id) == "KILLED"
    assert list(statuses.values()) == ["FINISHED"]


CREATE_AT_ONCE = """
import sys, time
from pathlib import Path
from gatelab.tracking.experiment import configure
go = Path(sys.argv[2])
Path(sys.argv[3]).touch()
while not go.exists():
    time.sleep(0.001)
print(configure(sys.argv[1], "gatelab"))
"""


@pytest.mark.slow
def test_processes_creating_a_new_store_at_the_same_moment_all_get_one_experiment(tmp_path):
    # Each process has imported MLflow and waits; then all create the store and the experiment.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [PYTHON, "-c", CREATE_AT_ONCE, uri, str(go), str(tmp_path / f"ready-{number}")],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for number in range(4)
    ]
    while len(list(tmp_path.glob("ready-*"))) < 4:
        assert all(process.poll() is None for process in processes)
        time.sleep(0.05)
    go.touch()
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    experiment_ids = {stdout.strip() for stdout, _ in outputs}
    assert len(experiment_ids) == 1
    assert MlflowClient(uri).get_experiment_by_name("gatelab").experiment_id in experiment_ids


@pytest.mark.slow
def test_the_store_file_alone_holds_a_finished_run(tmp_path):
    # In write-ahead-log mode a commit lands in mlflow.db-wal first; the run folds it back in
    # at its end, so a copy of mlflow.db alone (a backup, an attachment) is whole.
    result = run_train(tmp_path, *QUICK)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "mlflow.db-wal").stat().st_size
    copied = statuses_in_a_copy_of_the_store_file(tmp_path, tmp_path / "copy")
    assert list(copied.values()) == ["FINISHED"]
