"""A team's store: an `mlflow server` on PostgreSQL, proxying artifacts, written by many at once.

The test starts its own throwaway PostgreSQL cluster (`initdb`, `pg_ctl`; `.ci/run` installs
Debian's `postgresql` when they are missing) and fails, not skips, when there is none.
"""

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import (
    assert_sweep_arrived,
    free_port,
    mlflow_server,
    run_train,
    run_trains_together,
    sweeps_in,
    train_environment,
)

pytestmark = pytest.mark.slow

EPOCHS = 20
QUICK = [f"trainer.epochs={EPOCHS}", "trainer.print_every=0"]
DATABASE_USER = "gatelab"


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


@pytest.fixture(scope="module")
def postgres_uri() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port with an empty database `mlflow`."""
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


@dataclass(frozen=True)
class TeamServer:
    uri: str
    artifacts: Path


@pytest.fixture(scope="module")
def team_server(
    postgres_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TeamServer]:
    """`mlflow server --backend-store-uri postgresql://... --serve-artifacts`, as a team runs it."""
    directory = tmp_path_factory.mktemp("team_server")
    with mlflow_server(directory, postgres_uri) as uri:
        yield TeamServer(uri, directory / "artifacts")


def assert_artifacts_went_through_the_server(
    server: TeamServer, client: MlflowClient, run_ids: list[str], workdir: Path
) -> None:
    """Every run's files are in the server's artifact folder, none beside the job."""
    for run_id in run_ids:
        assert client.get_run(run_id).info.artifact_uri.startswith("mlflow-artifacts:")
        assert list(server.artifacts.glob(f"*/{run_id}/artifacts/weights.json"))
    assert not (workdir / "mlruns").exists()
    assert not (workdir / "mlflow.db").exists()


def test_a_two_worker_joblib_sweep_lands_whole_on_a_postgresql_server(team_server, tmp_path):
    seeds = [1, 2, 3, 4]
    result = run_train(
        tmp_path,
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"seed={','.join(map(str, seeds))}",
        f"tracking.uri={team_server.uri}",
        "tracking.experiment=joblib",
        *QUICK,
        environment=train_environment(None),
    )
    assert result.returncode == 0, result.stderr[-3000:]

    client = MlflowClient(team_server.uri)
    ((parent_id, children),) = sweeps_in(client, "joblib").items()
    assert_sweep_arrived(client, parent_id, children, seeds, EPOCHS)
    run_ids = [child.info.run_id for child in children]
    assert_artifacts_went_through_the_server(team_server, client, run_ids, tmp_path)


def test_two_sweeps_at_once_land_whole_on_a_postgresql_server(team_server, tmp_path):
    # Started together into an experiment that does not exist yet: both create it.
    seeds_by_sweep = {"a": [1, 2, 3], "b": [4, 5, 6]}
    results = run_trains_together(
        tmp_path,
        *(
            [
                "-m",
                f"seed={','.join(map(str, seeds))}",
                f"hydra.sweep.dir=multirun/{name}",
                f"tracking.uri={team_server.uri}",
                "tracking.experiment=together",
                *QUICK,
            ]
            for name, seeds in seeds_by_sweep.items()
        ),
        tracking_uri=None,
    )
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]

    client = MlflowClient(team_server.uri)
    sweeps = sweeps_in(client, "together")
    top_level = [client.get_run(run_id).info.run_name for run_id in sweeps]
    consoles = "\n".join(result.stderr[-2000:] for result in results)
    assert len(sweeps) == 2, f"two sweeps, but these top-level runs: {top_level}\n{consoles}"
    landed = {}
    for parent_id, children in sweeps.items():
        seeds = sorted(int(child.data.params["seed"]) for child in children)
        assert seeds in seeds_by_sweep.values()
        landed[tuple(seeds)] = parent_id
        assert_sweep_arrived(client, parent_id, children, seeds, EPOCHS)
        assert_artifacts_went_through_the_server(
            team_server, client, [child.info.run_id for child in children], tmp_path
        )
    assert len(landed) == 2
