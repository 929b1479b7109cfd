"""`hydra.sweeper.n_shards`: a vectorized sweep's populations as shards, each a job of the
configured `hydra/launcher`, writing their children into one shared store (SQLite, PostgreSQL).

What a sharded sweep must give is what one process gives: every job once, the same numbers and
statuses, one parent, each job under its cell; and a shard that dies leaves no run RUNNING and
its jobs to a re-run with the same `hydra.sweep.dir`.
"""

import json
import re
import signal
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from gatelab.errors import ConfigError
from gatelab.sweeps.shards import PLAN_FILE, SHARDS_FOLDER, split
from gatelab.sweeps.sweep_folder import PARENT_RUN_FILE
from gatelab.sweeps.vectorized.shards import EXIT_AFTER_TRAINING
from gatelab.sweeps.vectorized.sweeper import VectorizedSweeperImpl
from gatelab.tracking.records import SWEEP_TAG
from hydra_plugins.gatelab_vectorized_sweeper.vectorized_sweeper import VectorizedSweeper
from tests.helpers import (
    CONFIG_DIR,
    copy_store,
    is_cell,
    run_train,
    runs_of,
    stopped_once_written,
)

EPOCHS = 100
# 6 seeds x 2 rates: 12 jobs of one population, in 2 cells (lr=0.1, lr=2.0).
GRID = [
    "hydra/sweeper=vectorized",
    "seed=range(6)",
    "optimizer.learning_rate=0.1,2.0",
    f"trainer.epochs={EPOCHS}",
    "trainer.print_every=0",
]
JOBS = 12


def test_a_population_is_cut_into_runs_of_consecutive_jobs_differing_by_at_most_one():
    assert split(list(range(5)), 2) == [[0, 1, 2], [3, 4]]
    assert split(list(range(6)), 3) == [[0, 1], [2, 3], [4, 5]]
    assert split([7, 8], 4) == [[7], [8]]  # never an empty shard


NO_SHARDS = (
    "hydra.sweeper.n_shards=0 is not allowed: a number of shards a population is cut into, at "
    "least 1 (1: it trains in this process)"
)


def test_no_shards_is_refused_in_one_line_by_the_plugin_and_the_sweeper():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        config = compose(
            "config",
            overrides=["hydra/sweeper=vectorized", "hydra.sweeper.n_shards=0"],
            return_hydra_config=True,
        )
    # The callback asks the plugin before it opens the parent run; the sweeper asks again.
    with pytest.raises(ConfigError) as from_plugin:
        VectorizedSweeper.check_settings(config.hydra.sweeper)
    assert str(from_plugin.value) == NO_SHARDS
    with pytest.raises(ConfigError) as from_sweeper:
        VectorizedSweeperImpl(n_shards=0).sweep([])
    assert str(from_sweeper.value) == NO_SHARDS


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the sweep writes: an SQLite store in the test's folder, or the module's PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("tracking_uri")  # made already, in tmp_path
    return request.getfixturevalue("postgres_uri")


def sweep(
    workdir: Path, uri: str, sweep_dir: Path, *overrides: str, env: dict[str, str] | None = None
):
    """The grid's sweep in `sweep_dir`, on the store `uri` (a test's own folder, as the
    PostgreSQL database is the module's)."""
    return run_train(
        workdir, "-m", *GRID, f"hydra.sweep.dir={sweep_dir}", *overrides, tracking_uri=uri, env=env
    )


def job_view(run: Run) -> dict:
    """What a job's run says of it, apart from ids, times and its store's settings."""
    return {
        "name": run.info.run_name,
        "status": run.info.status,
        "params": {
            key: value for key, value in run.data.params.items() if not key.startswith("tracking.")
        },
        "overrides": run.data.tags["hydra.overrides"],
        "accuracy": run.data.metrics["accuracy"],
        "solved": run.data.metrics["solved"],
        "epochs_to_solve": run.data.metrics.get("epochs_to_solve"),
    }


def the_sweep(client: MlflowClient, sweep_dir: Path) -> tuple[Run, dict[int, Run], dict[str, Run]]:
    """The sweep of `sweep_dir`: its parent, its jobs by number (each once), its cells by name."""
    parent = client.get_run((sweep_dir / PARENT_RUN_FILE).read_text().strip())
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{SWEEP_TAG}` = '{parent.info.run_id}'",
        max_results=1000,
    )
    by_number: dict[int, Run] = {}
    for job in runs:
        number = int(job.data.tags["hydra.job.num"])
        assert number not in by_number, f"job {number} was written twice"
        by_number[number] = job
    cells = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
    )
    assert all(is_cell(cell) for cell in cells)
    return parent, by_number, {cell.info.run_name: cell for cell in cells}


@pytest.fixture(scope="module")
def one_process(
    tmp_path_factory: pytest.TempPathFactory, store_template: Path
) -> tuple[Run, dict[int, Run]]:
    """The grid trained in one process (n_shards=1, today's path): what shards must give."""
    workdir = tmp_path_factory.mktemp("one_process")
    copy_store(store_template, workdir)
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    result = sweep(workdir, uri, workdir / "sweep")
    assert result.returncode == 0, result.stderr[-3000:]
    parent, jobs, _ = the_sweep(MlflowClient(uri), workdir / "sweep")
    return parent, jobs


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_two_shards_give_the_jobs_numbers_and_statuses_of_one_process(
    launcher, store, one_process, tmp_path
):
    sweep_dir = tmp_path / "sweep"
    result = sweep(
        tmp_path, store, sweep_dir, f"hydra/launcher={launcher}", "hydra.sweeper.n_shards=2"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stdout + result.stderr
    assert (
        f"in 2 shards a population, each a job of hydra/launcher={launcher}: a shard holds at "
        "most 6 jobs"
    ) in console

    client = MlflowClient(store)
    parent, jobs, cells = the_sweep(client, sweep_dir)
    alone_parent, alone_jobs = one_process
    assert parent.info.status == "FINISHED"
    assert sorted(jobs) == sorted(alone_jobs) == list(range(JOBS))
    for number, job in jobs.items():
        alone = alone_jobs[number]
        assert job_view(job) == job_view(alone), f"job {number}"
        assert job.data.metrics["loss"] == pytest.approx(alone.data.metrics["loss"], abs=1e-6)
        # Under its cell, which is under the sweep's one parent.
        cell = cells[f"lr={job.data.params['optimizer.learning_rate']}"]
        assert job.data.tags["mlflow.parentRunId"] == cell.info.run_id
        assert job.data.tags[SWEEP_TAG] == parent.info.run_id
        assert cell.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert sorted(cells) == ["lr=0.1", "lr=2.0"]
    assert {cell.info.status for cell in cells.values()} == {"FINISHED"}
    for metric in ("jobs", "solved_jobs", "success_rate"):
        assert parent.data.metrics[metric] == alone_parent.data.metrics[metric]

    # Each shard's arrays merged on the parent: every job's full loss curve, by its run id.
    with np.load(sweep_dir / "losses.npz") as losses:
        assert sorted(losses.files) == sorted(job.info.run_id for job in jobs.values())
        for job in jobs.values():
            assert losses[job.info.run_id].shape == (EPOCHS,)
    # The plan each shard ran: consecutive jobs of the population.
    planned = [
        [job["number"] for job in json.loads(path.read_text())["jobs"]]
        for path in sorted(sweep_dir.glob(f"{SHARDS_FOLDER}/*/{PLAN_FILE}"))
    ]
    assert planned == [list(range(6)), list(range(6, 12))]


@pytest.mark.slow
def test_shards_on_submitits_local_executor_write_every_job_once(store, tmp_path):
    # submitit_local runs each shard as its own process, as submitit_slurm does on a cluster.
    result = sweep(
        tmp_path,
        store,
        tmp_path / "sweep",
        "hydra/launcher=submitit_local",
        "hydra.sweeper.n_shards=2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parent, jobs, cells = the_sweep(MlflowClient(store), tmp_path / "sweep")
    assert parent.info.status == "FINISHED"
    assert sorted(jobs) == list(range(JOBS))
    assert {job.info.status for job in jobs.values()} == {"FINISHED"}
    assert parent.data.metrics["jobs"] == JOBS
    assert {job.data.tags["mlflow.parentRunId"] for job in jobs.values()} == {
        cell.info.run_id for cell in cells.values()
    }


@pytest.mark.slow
def test_a_dead_shard_leaves_nothing_running_and_a_re_run_writes_exactly_its_missing_jobs(
    store, tmp_path
):
    sweep_dir = tmp_path / "sweep"
    # Shard 1's process ends itself (os._exit) once trained, before it writes a child.
    died = sweep(
        tmp_path,
        store,
        sweep_dir,
        "hydra/launcher=joblib",
        "hydra.sweeper.n_shards=2",
        env={EXIT_AFTER_TRAINING: "1"},
    )
    assert died.returncode != 0
    assert "shard" in died.stderr and f"hydra.sweep.dir={sweep_dir}" in died.stderr
    client = MlflowClient(store)
    parent, written, cells = the_sweep(client, sweep_dir)
    runs = [parent, *written.values(), *cells.values()]
    assert [run.info.run_name for run in runs if run.info.status == "RUNNING"] == []
    assert set(written) <= set(range(6))  # shard 0's, if it wrote before its worker was ended

    # The same command in the same folder (here on the basic launcher: the launcher is not part
    # of a sweep's overrides) runs the rest, each missing job once.
    resumed = sweep(tmp_path, store, sweep_dir, "hydra.sweeper.n_shards=2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    console = resumed.stdout + resumed.stderr
    assert re.search(rf"{len(written)} job\(s\) finished earlier are skipped", console)
    rerun = [
        job["number"]
        for path in sorted(sweep_dir.glob(f"{SHARDS_FOLDER}/*/{PLAN_FILE}"))
        for job in json.loads(path.read_text())["jobs"]
    ]
    assert sorted(rerun) == sorted(set(range(JOBS)) - set(written))
    parent, jobs, cells = the_sweep(client, sweep_dir)
    assert sorted(jobs) == list(range(JOBS))
    for number, job in written.items():
        assert jobs[number].info.run_id == job.info.run_id  # kept, not written again
    assert {job.info.status for job in jobs.values()} == {"FINISHED"}
    assert parent.info.status == "FINISHED"
    assert {cell.info.status for cell in cells.values()} == {"FINISHED"}
    assert parent.data.metrics["jobs"] == JOBS


@pytest.mark.slow
@pytest.mark.usefixtures("tracking_uri")
def test_a_stop_while_shards_write_ends_the_sweep_killed_and_leaves_nothing_running(tmp_path):
    # SIGTERM to the process group (a SLURM time limit): the launching process and both shards.
    command = [
        "-m",
        "hydra/sweeper=vectorized",
        "hydra/launcher=joblib",
        "hydra.sweeper.n_shards=2",
        "seed=range(2000)",
        "trainer.epochs=100",
        "trainer.print_every=0",
        "hydra.sweeper.runs_per_transaction=20",
    ]
    # Once the parent and 40 children are written.
    returncode, output, _ = stopped_once_written(tmp_path, command, 41, signal.SIGTERM)
    assert returncode == 128 + signal.SIGTERM, output
    assert "stopped by SIGTERM: the runs this command had open ended KILLED" in output
    _, parents, runs = runs_of(tmp_path)
    assert [parent.info.status for parent in parents] == ["KILLED"]
    children = [run for run in runs if "hydra.job.num" in run.data.tags]
    assert 40 <= len(children) < 2000
    assert all(run.info.status != "RUNNING" for run in runs)
    assert {child.info.status for child in children} == {"FINISHED"}
