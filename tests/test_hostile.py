"""Hostile cases a user meets around a command (issue 26 item 12): a working folder they cannot
write, `mlflow server` reading the store while a vectorized sweep writes it, a store of another
MLflow schema under the bulk writer. docs/tracking.md ("Hostile cases") says what each does."""

import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from gatelab.tracking import bulk
from gatelab.tracking.children import ClientChildStore, child_store
from gatelab.tracking.experiment import configure
from gatelab.tracking.store import sqlite_path
from tests.helpers import (
    PYTHON,
    QUICK,
    TRAIN_SCRIPT,
    mlflow_server,
    run_train,
    runs_of,
    start_train,
    sweep_children,
    train_environment,
)

# A user the test can become when it runs as root (CI does): Debian's and most systems' own.
OTHER_USER = "nobody"


def as_a_user(command: list[str]) -> list[str]:
    """`command` as a user who is not root: this one, or `OTHER_USER` when the test runs as root.

    The other user keeps one capability, reading and searching any folder (this machine's
    Python lives under /root, which only root may enter); what it may write is a user's.
    """
    if os.geteuid() != 0:
        return command
    user = pwd.getpwnam(OTHER_USER)
    only_reading = "+dac_read_search"
    return [
        "setpriv",
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--clear-groups",
        f"--inh-caps={only_reading}",
        f"--ambient-caps={only_reading}",
        f"--bounding-set=-all,{only_reading}",
        *command,
    ]


def users_folder(path: Path) -> Path:
    """A folder `as_a_user`'s user can write (its home, a folder for outputs)."""
    path.mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam(OTHER_USER)
        os.chown(path, user.pw_uid, user.pw_gid)
    return path


@pytest.fixture
def unwritable_folder(tmp_path: Path) -> Iterator[Path]:
    """A working folder `as_a_user`'s user can read but not write: root's, or made read-only."""
    folder = tmp_path / "readonly"
    folder.mkdir(mode=0o755)
    if os.geteuid() != 0:
        folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arguments", "status", "says"),
    [
        # Hydra makes the run's output folder before the job starts: the folder is named.
        ([], 1, "error: cannot write outputs: Permission denied; run from a folder you can write"),
        # The store (MLflow's default, mlflow.db in the working folder) is checked first.
        (["hydra.run.dir={writable}/run"], 2, "{workdir}"),
        (["-m", "seed=0,1"], 2, "{workdir}"),
        (
            ["-m", "hydra/sweeper=vectorized", "seed=range(4)", "hydra.sweep.dir={writable}/sweep"],
            2,
            "{workdir}",
        ),
    ],
    ids=["run", "run-outputs-elsewhere", "sweep", "vectorized-sweep"],
)
def test_a_working_folder_the_user_cannot_write_is_one_line_and_no_run(
    tmp_path, unwritable_folder, arguments, status, says
):
    home = users_folder(tmp_path / "home")
    writable = users_folder(tmp_path / "writable")
    command = [PYTHON, str(TRAIN_SCRIPT)]
    command += [argument.format(writable=writable) for argument in arguments]
    command.append("trainer.epochs=5")
    result = subprocess.run(
        as_a_user(command),
        cwd=unwritable_folder,
        env=train_environment(None, {"HOME": str(home)}),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    (line,) = lines
    assert says.format(workdir=unwritable_folder) in line
    if status == 2:
        assert line.startswith("error: ") and "mlflow.db cannot be created" in line
    # No store anywhere, so no run at all: none left RUNNING.
    assert list(unwritable_folder.iterdir()) == []
    assert list(writable.rglob("mlflow.db*")) == []


def children_written(database: Path) -> int:
    """How many child runs (runs with a parent) the SQLite store holds, read beside its writer."""
    try:
        with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True) as connection:
            query = "SELECT count(*) FROM tags WHERE key = 'mlflow.parentRunId'"
            return connection.execute(query).fetchone()[0]
    except sqlite3.Error:
        return 0  # not created yet


def rest_call(server: str, endpoint: str, body: dict) -> dict:
    """POST `body` to the server's REST `endpoint`; its answer (an error raises)."""
    request = urllib.request.Request(
        f"{server}/api/2.0/mlflow/{endpoint}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=SEARCH_TIMEOUT) as response:
        return json.load(response)


# Seconds an answer of the UI's search may take before the UI is taken as blocked.
SEARCH_TIMEOUT = 30
SWEEP_JOBS = 2000


def ui_search(server: str) -> int:
    """What the UI asks when its runs table opens: the experiments, then the first page of runs
    of all of them (as the UI's compare view does); the runs found."""
    experiments = rest_call(server, "experiments/search", {"max_results": 1000})["experiments"]
    found = rest_call(
        server,
        "runs/search",
        {
            "experiment_ids": [experiment["experiment_id"] for experiment in experiments],
            "max_results": 100,
            "order_by": ["attributes.start_time DESC"],
        },
    )
    return len(found.get("runs", []))


@pytest.mark.slow
def test_mlflow_server_answers_searches_while_a_vectorized_sweep_writes_its_store(tmp_path):
    database = tmp_path / "mlflow.db"
    (tmp_path / "server").mkdir()
    # The server first, as a user opens `mlflow ui` in the folder and then starts a sweep: the
    # store is MLflow's own, then also the sweep's.
    with (
        mlflow_server(tmp_path / "server", f"sqlite:///{database}") as server,
        tempfile.TemporaryFile("w+") as console,
    ):
        process = start_train(
            tmp_path,
            "-m",
            "hydra/sweeper=vectorized",
            f"seed=range({SWEEP_JOBS})",
            *QUICK,
            # Many small transactions: the searches meet the store between and inside them.
            "hydra.sweeper.runs_per_transaction=20",
            merge_output=True,
            stdout=console,
        )
        answers = []  # children in the store before and after each search, runs it found
        with process:
            while process.poll() is None:
                before = children_written(database)
                found = ui_search(server)
                answers.append((before, children_written(database), found))
                time.sleep(0.1)  # polled: the sweep writes for seconds
        console.seek(0)
        output = console.read()
    assert process.returncode == 0, output[-3000:]
    assert "child runs written by the SQL bulk writer" in output
    # Searches answered while the children were being written: some before and after them,
    # others still to come, and the runs table showed some.
    during = [found for before, after, found in answers if before > 0 and after < SWEEP_JOBS]
    assert during and all(during), answers
    _, parents, children = runs_of(tmp_path)
    assert [parent.info.status for parent in parents] == ["FINISHED"]
    assert len(children) == SWEEP_JOBS
    assert {child.info.status for child in children} == {"FINISHED"}
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


# The schema of MLflow 2.22's stores (its alembic head): an older MLflow's, not the tested one.
MLFLOW_2_22_SCHEMA = "0584bdc529eb"
# A schema this MLflow does not know: a newer MLflow's.
NEWER_SCHEMA = "ffffffffffff"


def store_of_another_schema(folder: Path, schema: str) -> tuple[str, Path]:
    """A store whose tables are the tested MLflow's, one run in it, its `alembic_version` set to
    `schema`: made in `folder`/made.db, then copied (a URI MLflow has not opened in this process,
    so it checks the schema as a new process does). Returns its URI and file."""
    made = folder / "made.db"
    client = MlflowClient(f"sqlite:///{made}")
    run = client.create_run(client.create_experiment("gatelab"), run_name="before")
    client.set_terminated(run.info.run_id)
    store = folder / "mlflow.db"
    shutil.copyfile(made, store)
    with sqlite3.connect(store) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (schema,))
    return f"sqlite:///{store}", store


def store_state(store: Path) -> tuple:
    """What a writer must leave as it was: the schema, every run, the file whole."""
    with sqlite3.connect(store) as connection:
        return (
            connection.execute("SELECT version_num FROM alembic_version").fetchall(),
            connection.execute("SELECT run_uuid, name, status FROM runs").fetchall(),
            connection.execute("PRAGMA integrity_check").fetchall(),
        )


@pytest.mark.parametrize("schema", [MLFLOW_2_22_SCHEMA, NEWER_SCHEMA])
def test_a_store_of_another_schema_is_refused_by_the_child_store_as_mlflow_refuses_it(
    tmp_path, schema
):
    uri, store = store_of_another_schema(tmp_path, schema)
    before = store_state(store)
    with pytest.raises(MlflowException, match="out-of-date database schema") as by_mlflow:
        MlflowClient(uri).search_experiments()
    with pytest.raises(MlflowException) as by_the_seam:
        child_store(uri)
    assert by_the_seam.value.message == by_mlflow.value.message
    assert store_state(store) == before


@pytest.mark.slow
@pytest.mark.parametrize("schema", [MLFLOW_2_22_SCHEMA, NEWER_SCHEMA])
def test_a_vectorized_sweep_on_a_store_of_another_schema_is_one_line_and_writes_nothing(
    tmp_path, schema
):
    uri, store = store_of_another_schema(tmp_path, schema)
    before = store_state(store)
    result = run_train(
        tmp_path, "-m", "hydra/sweeper=vectorized", "seed=range(4)", *QUICK, tracking_uri=uri
    )
    assert result.returncode != 0  # a store error's status (docs/tracking.md)
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert schema in lines[0]
    if schema == MLFLOW_2_22_SCHEMA:
        assert "mlflow db upgrade" in lines[0]
    assert store_state(store) == before


@pytest.mark.parametrize(
    ("tested", "value"), [("TESTED_SCHEMA", MLFLOW_2_22_SCHEMA), ("TESTED_MLFLOW", "2.22.0")]
)
def test_a_store_the_bulk_writer_was_not_tested_on_is_written_by_mlflows_client(
    tracking_uri, monkeypatch, tested, value
):
    # The store is the installed MLflow's newest schema; the bulk writer claims another.
    monkeypatch.setattr(bulk, tested, value)
    store = child_store(tracking_uri)
    assert isinstance(store, ClientChildStore)
    assert store.reason.endswith(f"the bulk writer is tested with {value}")
    experiment_id = configure(tracking_uri, "gatelab")
    database = sqlite_path(tracking_uri)
    schema = store_state(database)[0]
    run_ids = store.write_all(experiment_id, sweep_children("a-parent"))
    client = MlflowClient(tracking_uri)
    statuses = sorted(client.get_run(run_id).info.status for run_id in run_ids.values())
    assert statuses == ["FAILED", "FAILED", "FINISHED", "FINISHED", "FINISHED", "FINISHED"]
    assert store_state(database)[0::2] == (schema, [("ok",)])
