"""What tests share: paths, running `python src/train.py`, an MLflow server, reading sweeps back.

One module of helpers; test modules import from here, never from each other.
"""

import csv
import json
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import IO

import numpy as np
import psycopg
import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from gatelab.data import truth_table
from gatelab.history import History
from gatelab.sweeps.cells import CELL_TAG
from gatelab.sweeps.own_experiment import POINTER_TAG
from gatelab.tracking import records
from gatelab.tracking.records import SWEEP_TAG
from gatelab.tracking.store import sqlite_path

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "conf"
TRAIN_SCRIPT = REPO / "src" / "train.py"
PYTHON = sys.executable


QUICK = ["trainer.epochs=300", "trainer.print_every=0"]
USER_TAGS = "tags=[demo,team:ml]"
# In QUICK's 300 epochs the MLP learns XOR from seeds 1 and 2 at learning rate 2.0, not at 0.1.
SEEDS_BY_RATES = ["seed=1,2", "optimizer.learning_rate=0.1,2.0"]
DATABASE_USER = "gatelab"


def runs_of(workdir: Path) -> tuple[MlflowClient | None, list[Run], list[Run]]:
    """The store's client (None before the store exists), its sweep parents and the jobs:
    the other runs but cells."""
    client = store_client(workdir)
    runs = [run for run in all_runs(client) if not is_pointer(run)]
    parents = [run for run in runs if "sweep.params" in run.data.tags]
    jobs = [run for run in runs if "sweep.params" not in run.data.tags and not is_cell(run)]
    return client, parents, jobs


def is_pointer(run: Run) -> bool:
    """The run that points to a sweep's own experiment from the config's (not a job)."""
    return POINTER_TAG in run.data.tags


def cells_of(workdir: Path) -> list[Run]:
    """The runs of the cells of the store's sweeps, in creation order."""
    runs = all_runs(store_client(workdir))
    return sorted((run for run in runs if is_cell(run)), key=lambda run: run.info.start_time)


def store_client(workdir: Path) -> MlflowClient | None:
    """A client of `workdir`'s store, None while the store does not exist yet.

    `MlflowClient(uri)` creates an SQLite store at once: a test polling a starting process
    must not, or the process finds a half-created file, rebuilds it and renames the new file
    over it, and the test's pooled connections go on reading the old one.
    """
    path = workdir / "mlflow.db"
    return MlflowClient(f"sqlite:///{path}") if path.exists() else None


def all_runs(client: MlflowClient | None) -> list[Run]:
    """Every run of the store, in every experiment (a big sweep has one of its own)."""
    if client is None or not sqlite_path(client.tracking_uri).exists():
        return []  # not created yet
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    return client.search_runs(experiments, max_results=50000) if experiments else []


def is_cell(run: Run) -> bool:
    return CELL_TAG in run.data.tags


def summary_rows(workdir: Path, sweep_dir: Path | None = None) -> list[dict[str, str]]:
    """The rows of the sweep's `sweep_summary.csv`: in `sweep_dir`, else the one multirun's."""
    if sweep_dir is not None:
        path = sweep_dir / "sweep_summary.csv"
    else:
        (path,) = workdir.glob("multirun/*/*/sweep_summary.csv")
    with path.open() as file:
        return list(csv.DictReader(file))


def copy_store(template: Path, folder: Path, artifact_root: str | None = None) -> Path:
    """`folder/mlflow.db`, a copy of the new store `template` (fixture `store_template`), as if
    made there: MLflow writes into a new store the Default experiment's artifact folder, resolved
    where the store was made, and its creation time.

    Args:
        artifact_root: where its maker puts artifacts: a run's `folder/mlruns` (None), or
            `mlflow-artifacts:/` for `mlflow server --serve-artifacts`.
    """
    path = folder / "mlflow.db"
    shutil.copyfile(template, path)
    now = int(time.time() * 1000)
    with closing(sqlite3.connect(path)) as database, database:
        (location,) = database.execute(
            "SELECT artifact_location FROM experiments WHERE experiment_id = 0"
        ).fetchone()
        assert location == str(template.parent / "mlruns" / "0"), location  # MLflow's layout
        root = artifact_root or str(folder / "mlruns")
        database.execute(
            "UPDATE experiments SET artifact_location = ?, creation_time = ?, last_update_time = ?"
            " WHERE experiment_id = 0",
            (f"{root.rstrip('/')}/0", now, now),
        )
    return path


# What a caller's shell may have set that changes how `train.py` runs: Hydra's full tracebacks,
# MLflow's variables (a store, an experiment, a run, credentials), a sweep's parent run.
CALLER_VARIABLES = ("HYDRA_FULL_ERROR",)
CALLER_PREFIXES = ("MLFLOW_", "GATELAB_")
# A test's store, beside its outputs: `{workdir}` is the folder the command runs in.
WORKDIR_STORE = "sqlite:///{workdir}/mlflow.db"


def train_environment(
    tracking_uri: str | None, variables: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of a test's `python src/train.py`: this one's without what a caller's
    shell could leak (`CALLER_VARIABLES`, `CALLER_PREFIXES`), then `MLFLOW_TRACKING_URI` (None:
    not set) and the test's own `variables`."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in CALLER_VARIABLES and not key.startswith(CALLER_PREFIXES)
    }
    if tracking_uri is not None:
        environment["MLFLOW_TRACKING_URI"] = tracking_uri
    return {**environment, **(variables or {})}


def start_train(
    workdir: Path,
    *arguments: str,
    tracking_uri: str | None = WORKDIR_STORE,
    env: dict[str, str] | None = None,
    merge_output: bool = False,
    new_session: bool = False,
    stdout: IO[str] | int = subprocess.PIPE,
    stderr: IO[str] | int = subprocess.PIPE,
) -> subprocess.Popen:
    """`python src/train.py ARGUMENTS` started in `workdir`, its console read as text.

    Args:
        tracking_uri: its `MLFLOW_TRACKING_URI` (`{workdir}` filled in); None: not set, so the
            command's `tracking.uri=` or MLflow's default decides.
        env: variables of the test's own, over the cleaned environment (`train_environment`).
        merge_output: its stderr into its stdout, one stream in the order it was written.
        new_session: in a process group of its own, which a signal to the group reaches whole
            (its writer processes too), as a SLURM time limit does.
        stdout, stderr: where its console goes: pipes, or files for a process that must not
            block on a full pipe.
    """
    uri = tracking_uri.format(workdir=workdir) if tracking_uri is not None else None
    return subprocess.Popen(
        [PYTHON, str(TRAIN_SCRIPT), *arguments],
        cwd=workdir,
        env=train_environment(uri, env),
        stdout=stdout,
        stderr=subprocess.STDOUT if merge_output else stderr,
        text=True,
        start_new_session=new_session,
    )


def run_train(
    workdir: Path,
    *arguments: str,
    tracking_uri: str | None = WORKDIR_STORE,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """`python src/train.py ARGUMENTS` in `workdir` to its end (`start_train` says the rest)."""
    with start_train(workdir, *arguments, tracking_uri=tracking_uri, env=env) as process:
        try:
            stdout, stderr = process.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_trains_together(
    workdir: Path, *argument_lists: list[str], tracking_uri: str | None
) -> list[subprocess.CompletedProcess]:
    """Several `python src/train.py ARGUMENTS` started at once in `workdir`, once all have ended."""
    with ExitStack() as stack:
        started = []
        for arguments in argument_lists:
            # Files, not pipes: a process blocked on a full pipe would no longer run concurrently.
            stdout = stack.enter_context(tempfile.TemporaryFile("w+"))
            stderr = stack.enter_context(tempfile.TemporaryFile("w+"))
            process = stack.enter_context(
                start_train(
                    workdir, *arguments, tracking_uri=tracking_uri, stdout=stdout, stderr=stderr
                )
            )
            # Leaving early (a timeout) ends them all; Popen's own exit only waits.
            stack.callback(process.kill)
            started.append((process, stdout, stderr))
        results = []
        for process, stdout, stderr in started:
            process.wait(timeout=900)
            stdout.seek(0)
            stderr.seek(0)
            results.append(
                subprocess.CompletedProcess(
                    process.args, process.returncode, stdout.read(), stderr.read()
                )
            )
        return results


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_programs() -> Path:
    """Where `initdb` and `pg_ctl` are: on PATH, or Debian's /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: [int(part) for part in path.parents[1].name.split(".") if part.isdigit()],
    )
    if not debian:
        pytest.fail(
            "PostgreSQL is not installed: no initdb on PATH or in /usr/lib/postgresql/*/bin; "
            "install it (apt-get install postgresql, as .ci/run does)"
        )
    return debian[-1].parent


def as_cluster_owner(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: there, run its programs as the `postgres` user."""
    if os.geteuid() != 0:
        return command
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root and there is no `postgres` user to run PostgreSQL as")
    return [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "postgres", "--", *command]


def run_postgres_program(command: list[str], cwd: Path, log: Path | None = None) -> None:
    """Run `initdb` or `pg_ctl` in `cwd`, a folder its user can read; fail with its output."""
    result = subprocess.run(
        as_cluster_owner(command), cwd=cwd, capture_output=True, text=True, timeout=120
    )
    server_log = log.read_text()[-3000:] if log is not None and log.exists() else ""
    assert result.returncode == 0, (
        f"{' '.join(command)}:\n{result.stdout}{result.stderr}{server_log}"
    )


@contextmanager
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port with an empty database `mlflow`;
    yields its URI (fixture `postgres_uri`)."""
    programs = postgres_programs()
    # Not in tmp_path: pytest's temporary root is readable by its owner only, and as root the
    # cluster's owner is the `postgres` user.
    with tempfile.TemporaryDirectory(prefix="gatelab-postgres-") as directory:
        cluster = Path(directory)
        if os.geteuid() == 0:
            shutil.chown(cluster, user="postgres", group="postgres")
        data = cluster / "data"
        port = free_port()
        run_postgres_program(
            [
                str(programs / "initdb"),
                f"--pgdata={data}",
                f"--username={DATABASE_USER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            cluster,
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            # Its own socket folder: Debian's /var/run/postgresql may be missing or another's.
            "unix_socket_directories": f"'{cluster}'",
            # A throwaway cluster need not survive a crash of the machine.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        with (data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        pg_ctl = str(programs / "pg_ctl")
        log = cluster / "postgres.log"
        try:
            run_postgres_program(
                [pg_ctl, f"--pgdata={data}", f"--log={log}", "--wait", "--timeout=60", "start"],
                cluster,
                log,
            )
            # CREATE DATABASE runs outside a transaction.
            with psycopg.connect(
                host="127.0.0.1", port=port, user=DATABASE_USER, dbname="postgres", autocommit=True
            ) as connection:
                connection.execute("CREATE DATABASE mlflow")
            yield f"postgresql://{DATABASE_USER}@127.0.0.1:{port}/mlflow"
        finally:
            if (data / "postmaster.pid").exists():
                run_postgres_program(
                    [pg_ctl, f"--pgdata={data}", "--mode=fast", "--wait", "stop"], cluster
                )


@contextmanager
def mlflow_server(
    directory: Path,
    backend_store_uri: str | None = None,
    command: str = "server",
    store_template: Path | None = None,
) -> Iterator[str]:
    """`mlflow server` on a free loopback port, proxying artifacts to `directory/artifacts`.

    Yields its address. Its store is `backend_store_uri`, by default `directory/mlflow.db`: made
    by the server, or a copy of `store_template` (fixture `store_template`), which spares the
    server MLflow's migrations. Its log is `directory/server.log`. `command="ui"`: `mlflow ui`,
    as a user starts it to look at a local store (artifacts read where the runs wrote them).
    """
    if backend_store_uri is None:
        backend_store_uri = f"sqlite:///{directory / 'mlflow.db'}"
        if store_template is not None:
            served = "mlflow-artifacts:/" if command == "server" else None
            copy_store(store_template, directory, artifact_root=served)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log_path = directory / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [
                str(Path(PYTHON).with_name("mlflow")),
                command,
                "--backend-store-uri",
                backend_store_uri,
                *(
                    ("--serve-artifacts", "--artifacts-destination", str(directory / "artifacts"))
                    if command == "server"
                    else ()
                ),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            cwd=directory,
            # Without MLflow's job runner (GenAI scorers, trace rollups; gatelab uses none of
            # them): one process fewer to start and stop.
            env=train_environment(None, {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, f"mlflow server exited:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, (
                f"mlflow server did not come up:\n{log_path.read_text()[-3000:]}"
            )
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# What every finished job logs as artifacts, besides its model (a logged model, searched apart).
JOB_ARTIFACTS = {
    "weights.json",
    "predictions.json",
    "loss_curve.png",
    "model_summary.txt",
    "config",
}


def sweeps_in(client: MlflowClient, experiment: str = "gatelab") -> dict[str, list[Run]]:
    """Every top-level run of the experiment (a sweep's parent) with its jobs, by run id.

    A job that lost its parent is a top-level run without jobs here; a sweep's cells are not
    jobs, and every job's cell belongs to its sweep.
    """
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id], max_results=1000)
    by_id = {run.info.run_id: run for run in runs}
    sweeps = {run.info.run_id: [] for run in runs if "mlflow.parentRunId" not in run.data.tags}
    for run in runs:
        parent = run.data.tags.get("mlflow.parentRunId")
        if parent is None or is_cell(run):
            continue
        sweep = run.data.tags.get(SWEEP_TAG, parent)
        assert sweep in sweeps, f"run {run.info.run_name!r} names a sweep that is not there"
        if parent != sweep:
            assert by_id[parent].data.tags["mlflow.parentRunId"] == sweep, "a cell of another"
        sweeps[sweep].append(run)
    return sweeps


def assert_sweep_arrived(
    client: MlflowClient, parent_id: str, children: list[Run], seeds: list[int], epochs: int
) -> None:
    """A sweep over `seeds` landed whole: every child, every loss point, every artifact, a summary.

    Args:
        client: the client of the store the sweep logged to.
        parent_id: the sweep's parent run.
        children: the runs naming it as parent.
        seeds: the sweep's `seed` values, one job each.
        epochs: `trainer.epochs` of every job.
    """
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert sorted(int(child.data.params["seed"]) for child in children) == sorted(seeds)
    experiment_id = parent.info.experiment_id
    for child in children:
        run_id = child.info.run_id
        assert child.info.status == "FINISHED"
        history = client.get_metric_history(run_id, "loss")
        assert sorted(metric.step for metric in history) == list(range(1, epochs + 1))
        artifacts = {artifact.path for artifact in client.list_artifacts(run_id)}
        assert artifacts >= JOB_ARTIFACTS, f"run {child.info.run_name!r} has only {artifacts}"
        assert client.search_logged_models(
            [experiment_id], filter_string=f"source_run_id = '{run_id}'"
        ), f"run {child.info.run_name!r} has no logged model"
    assert parent.data.metrics["jobs"] == len(seeds)
    with tempfile.TemporaryDirectory() as directory:
        summary = Path(client.download_artifacts(parent_id, "sweep_summary.csv", directory))
        with summary.open() as file:
            rows = list(csv.DictReader(file))
    assert sorted(row["run_id"] for row in rows) == sorted(child.info.run_id for child in children)


def statuses_in_a_copy_of_the_store_file(workdir: Path, copy: Path) -> dict[str, str]:
    """Every run's status, read from a copy of `mlflow.db` alone (no `-wal` beside it), as a
    user who copies, backs up or attaches the store file would read it."""
    copy.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(workdir / "mlflow.db", copy / "mlflow.db")
    runs = all_runs(MlflowClient(f"sqlite:///{copy / 'mlflow.db'}"))
    return {run.info.run_id: run.info.status for run in runs}


def runs_written(database: Path) -> int:
    """How many runs the SQLite store `database` holds, read alongside its writers."""
    try:
        with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True) as connection:
            return connection.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.Error:
        return 0  # not created yet


def stopped_once_written(
    workdir: Path, arguments: list[str], runs: int, stop: signal.Signals
) -> tuple[int, str, float]:
    """Run `python src/train.py ARGUMENTS` on `workdir/mlflow.db`, and send `stop` to its
    process group (its writers too, as a SLURM time limit does) once the store holds `runs`
    runs. Returns its exit status, its console and the seconds from the signal to its exit."""
    process = start_train(workdir, *arguments, merge_output=True, new_session=True)
    deadline = time.monotonic() + 300
    while runs_written(workdir / "mlflow.db") < runs:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
        time.sleep(0.2)
    os.killpg(process.pid, stop)
    stopped = time.perf_counter()
    output = process.communicate(timeout=300)[0]
    return process.returncode, output, time.perf_counter() - stopped


# A sweep's children as `sweeps.population` builds them (nothing trained): `sweep_children`.
CHILD_EPOCHS = 40
CHILD_LAYERS = [("hidden", ["kernel", "bias"]), ("output", ["kernel", "bias"])]


def trained_child(job: records.Job, learning_rate: float, diverged: bool) -> records.RunRecord:
    """A vectorized child of `job`: a loss curve of `CHILD_EPOCHS` epochs (infinite from epoch
    30 if `diverged`), outputs, weights, its truth table and times."""
    table = truth_table("xor", 2)
    loss = 0.3 * np.exp(-np.arange(1, CHILD_EPOCHS + 1) * learning_rate / 10)
    if diverged:
        loss[30:] = np.inf
    history = History(loss=loss.astype(np.float32), solved=np.arange(CHILD_EPOCHS) > 20)
    rng = np.random.default_rng(job.number)
    return records.trained(
        job,
        name=records.run_name(job, "mlp-xor"),
        params={"seed": str(job.number), "optimizer.learning_rate": str(learning_rate)},
        user_tags={"team": "ml"},
        history=history,
        outputs=0.8 * table.targets + 0.1 * job.number % 2,
        inputs=table.inputs,
        targets=table.targets,
        layers=CHILD_LAYERS,
        weights=[rng.normal(size=shape) for shape in [(2, 2), (2,), (2, 1), (1,)]],
        epochs=CHILD_EPOCHS,
        max_loss_points=10,
        dataset="xor",
        start_time=1_700_000_000_000 + job.number,
        end_time=1_700_000_000_500 + job.number,
    )


def sweep_children(parent_run_id: str) -> list[records.RunRecord]:
    """Six children of one sweep: solved or not, one diverged (4), one refused before training
    (5)."""
    made = []
    for number in range(6):
        learning_rate = 0.5 if number < 3 else 2.0
        job = records.Job(
            overrides=[f"seed={number}", f"optimizer.learning_rate={learning_rate}"],
            choices={"model": "mlp", "dataset": "xor"},
            parent_run_id=parent_run_id,
            number=number,
            swept=["seed", "optimizer.learning_rate"],
            sweep_run_id=parent_run_id,
        )
        if number == 5:
            made.append(
                records.failed(
                    job,
                    name=records.run_name(job, "mlp-xor"),
                    params={"seed": "5", "optimizer.learning_rate": "x"},
                    user_tags={"team": "ml"},
                    error=ValueError("optimizer.learning_rate='x' is not a number"),
                )
            )
        else:
            made.append(trained_child(job, learning_rate, diverged=number == 4))
    return made


def comparable_run(run: Run) -> dict:
    """What MLflow reads back of a run, apart from its ids and times."""
    info = run.info
    return {
        "name": info.run_name,
        "status": info.status,
        "lifecycle_stage": info.lifecycle_stage,
        "user_id": info.user_id,
        "artifact_uri": info.artifact_uri.replace(info.run_id, "RUN").replace(
            f"/{info.experiment_id}/", "/EXPERIMENT/"
        ),
        "params": run.data.params,
        "tags": run.data.tags,
        "metrics": run.data.metrics,
        "inputs": [
            (item.dataset.to_dictionary(), [(tag.key, tag.value) for tag in item.tags])
            for item in run.inputs.dataset_inputs
        ],
    }


def assert_opens_children(client, console: str, parent) -> None:
    """`console` links to the view `links.share_children_view` keeps for `parent`'s children:
    only them, one row each (not folded under the parent), every one in the charts."""
    experiment_id, run_id = parent.info.experiment_id, parent.info.run_id
    assert (
        f"/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
        f"&viewStateShareKey={run_id}&compareRunsMode=CHART"
    ) in console
    tags = client.get_experiment(experiment_id).tags
    view = json.loads(tags[f"mlflow.sharedViewState.{run_id}"])
    assert view["searchFilter"] == f'tags.mlflow.parentRunId = "{run_id}"'
    # Sorted by the start time (or not at all), MLflow fetches the parent and folds them.
    assert view["orderByKey"] == "metrics.`success_rate`" and not view["orderByAsc"]
    assert view["runsHiddenMode"] == "SHOW_ALL"
    assert view["compareRunCharts"][0]["metricKey"] == "success_rate"
