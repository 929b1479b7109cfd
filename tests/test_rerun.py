"""`python -m gatelab.runs rerun RUN_ID`: one job re-run alone from what its run logged, for a
single run, a basic sweep's child and a vectorized sweep's member (in the sweep's own
experiment), gives the job's final loss, outcome and outputs, with a Keras model and figures, in
the job's store and experiment, named after it, and no sweep's member; what is not a job's run is
one line, exit 2, nothing created."""

import json
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from gatelab import rerun, runs
from gatelab.sweeps.cells import CELL_TAG
from gatelab.sweeps.sweep_folder import LOSSES_FILE, MEMBERS_FILE
from gatelab.tracking.links import run_url
from gatelab.tracking.naming import config_params
from gatelab.tracking.records import DESCRIPTION_TAG, SWEEP_TAG
from tests.helpers import (
    CONFIG_DIR,
    PYTHON,
    REPO,
    copy_store,
    run_trains_together,
    train_environment,
)

QUICK = ["model=mlp", "dataset=xor", "trainer.epochs=200", "trainer.print_every=0"]
# The job each test re-runs: at this rate seed 2 learns XOR within QUICK's 200 epochs (163).
JOB = ["seed=2", "optimizer.learning_rate=2.0"]
GRID = ["seed=1,2", "optimizer.learning_rate=0.5,2.0"]
# The vectorized sweep in an experiment of its own, as a sweep of more than 100 jobs is.
OWN_EXPERIMENT = "tracking.own_experiment_above=1"
KINDS = ("single run", "basic sweep's child", "vectorized sweep's member")


def the_runs(client: MlflowClient) -> list[Run]:
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    return client.search_runs(experiments, max_results=1000)


def command(workdir: Path, *arguments: str) -> subprocess.Popen:
    """`python -m gatelab.runs ARGUMENTS` started in `workdir`, on its store."""
    return subprocess.Popen(
        [PYTHON, "-m", "gatelab.runs", *arguments],
        cwd=workdir,
        env=train_environment(f"sqlite:///{workdir}/mlflow.db"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, store_template: Path) -> dict:
    """A store with a single run, a basic sweep and a vectorized sweep (in its own experiment),
    and the job seed=2 lr=2.0 of each re-run: (job's run, re-run, console) by kind."""
    workdir = tmp_path_factory.mktemp("rerun")
    copy_store(store_template, workdir)
    made = run_trains_together(
        workdir,
        [*QUICK, *JOB],
        ["-m", *QUICK, *GRID],
        ["-m", "hydra/sweeper=vectorized", *QUICK, *GRID, OWN_EXPERIMENT],
        tracking_uri="sqlite:///{workdir}/mlflow.db",
    )
    assert all(process.returncode == 0 for process in made), [p.stderr[-2000:] for p in made]
    client = MlflowClient(f"sqlite:///{workdir}/mlflow.db")
    everything = the_runs(client)
    parents = [run for run in everything if "sweep.params" in run.data.tags]
    (single,) = [
        run
        for run in everything
        if "hydra.job.num" in run.data.tags and "mlflow.parentRunId" not in run.data.tags
    ]
    jobs = {}
    for parent in parents:
        vectorized = "hydra/sweeper=vectorized" in parent.data.tags["sweep.command"]
        (job,) = [
            run
            for run in everything
            if run.data.tags.get(SWEEP_TAG) == parent.info.run_id
            and run.info.run_name == "seed=2 lr=2.0"
        ]
        jobs[KINDS[2] if vectorized else KINDS[1]] = job
    jobs[KINDS[0]] = single
    started = {kind: command(workdir, "rerun", job.info.run_id) for kind, job in jobs.items()}
    consoles = {kind: process.communicate(timeout=600) for kind, process in started.items()}
    for kind, process in started.items():
        assert process.returncode == 0, consoles[kind][1][-3000:]
    reruns = {
        run.data.tags[rerun.RERUN_TAG]: run
        for run in the_runs(client)
        if rerun.RERUN_TAG in run.data.tags
    }
    return {
        "workdir": workdir,
        "client": client,
        "parents": parents,
        "runs": {
            kind: (job, reruns[job.info.run_id], consoles[kind][0]) for kind, job in jobs.items()
        },
    }


def outputs(client: MlflowClient, run: Run) -> np.ndarray:
    """A run's output per row of the truth table: its `predictions.json`, or the tag a
    vectorized member holds it in."""
    if "predictions" in run.data.tags:
        table = json.loads(run.data.tags["predictions"])
    else:
        mlflow.set_tracking_uri(client.tracking_uri)
        table = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/predictions.json")
    column = table["columns"].index("output")
    return np.array([row[column] for row in table["data"]])


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_a_rerun_ends_as_the_job_did(store, kind):
    job, again, _ = store["runs"][kind]
    client = store["client"]
    outcome = ("accuracy", "solved", "epochs_to_solve")
    assert {key: again.data.metrics[key] for key in outcome} == {
        key: job.data.metrics[key] for key in outcome
    }
    assert job.data.metrics["solved"] == 1.0
    if kind == KINDS[2]:
        # The population's compiled program and Keras's differ in the last float digits
        # (docs/vectorized.md: final losses within 1e-5).
        assert again.data.metrics["loss"] == pytest.approx(job.data.metrics["loss"], rel=1e-5)
        np.testing.assert_allclose(outputs(client, again), outputs(client, job), rtol=1e-5)
    else:
        assert again.data.metrics["loss"] == job.data.metrics["loss"]
        np.testing.assert_array_equal(outputs(client, again), outputs(client, job))
    assert again.data.params == job.data.params


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_a_rerun_is_a_run_alone_in_the_jobs_experiment_with_model_and_figures(store, kind):
    job, again, console = store["runs"][kind]
    client = store["client"]
    assert again.info.run_name == f"rerun of {job.info.run_name}"
    assert again.data.tags[rerun.RERUN_TAG] == job.info.run_id
    assert again.info.experiment_id == job.info.experiment_id
    assert again.info.status == "FINISHED"
    assert "mlflow.parentRunId" not in again.data.tags and SWEEP_TAG not in again.data.tags
    experiment = client.get_experiment(job.info.experiment_id).name
    # The command that ran: the job's overrides, and its experiment where it is not the default.
    overrides = job.data.tags["hydra.overrides"]
    if experiment != "gatelab":
        overrides += f" tracking.experiment='{experiment}'"
    assert again.data.tags["hydra.overrides"] == overrides
    artifacts = {item.path for item in client.list_artifacts(again.info.run_id)}
    assert {"loss_curve.png", "decision_boundary.png", "loss.csv", "config"} <= artifacts
    assert client.search_logged_models(
        [again.info.experiment_id], filter_string=f"source_run_id = '{again.info.run_id}'"
    )
    mlflow.set_tracking_uri(client.tracking_uri)
    assert console.splitlines()[-1].endswith(run_url(again.info.experiment_id, again.info.run_id))
    assert again.info.run_id in console.splitlines()[-1]


@pytest.mark.slow
def test_the_vectorized_member_was_rerun_in_its_sweeps_own_experiment(store):
    job, again, _ = store["runs"][KINDS[2]]
    experiment = store["client"].get_experiment(again.info.experiment_id)
    assert experiment.name.startswith("gatelab sweep "), experiment.name


@pytest.mark.slow
def test_a_sweep_keeps_its_jobs_and_cells(store):
    client = store["client"]
    for parent in store["parents"]:
        members = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`{SWEEP_TAG}` = '{parent.info.run_id}'",
        )
        assert len(members) == 4
        cells = client.search_runs(
            [parent.info.experiment_id], filter_string=f"tags.`{CELL_TAG}` != ''"
        )
        for cell in cells:
            children = client.search_runs(
                [cell.info.experiment_id],
                filter_string=f"tags.`mlflow.parentRunId` = '{cell.info.run_id}'",
            )
            assert len(children) == cell.data.metrics["jobs"] == 2


@pytest.mark.slow
def test_a_vectorized_members_page_says_where_its_arrays_are_and_how_to_rerun_it(store):
    job, _, _ = store["runs"][KINDS[2]]
    note = job.data.tags[DESCRIPTION_TAG]
    (parent,) = [p for p in store["parents"] if p.info.experiment_id == job.info.experiment_id]
    sweep_dir = Path(parent.data.tags["sweep.dir"])
    assert f"python -m gatelab.runs rerun {job.info.run_id}" in note
    assert f"`{LOSSES_FILE}`" in note and f"`{MEMBERS_FILE}`" in note
    assert str(sweep_dir) in note
    with np.load(sweep_dir / LOSSES_FILE) as losses:
        assert losses[job.info.run_id][-1] == pytest.approx(job.data.metrics["loss"])


def refusal(capsys: pytest.CaptureFixture, *arguments: str) -> str:
    """`python -m gatelab.runs ARGUMENTS`, which must refuse: its one line."""
    capsys.readouterr()  # what making the store printed
    with pytest.raises(SystemExit) as stopped:
        runs.main(list(arguments))
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.slow
def test_a_sweeps_own_run_or_cell_is_not_a_job(store, capsys):
    client = store["client"]
    before = len(the_runs(client))
    for parent in store["parents"]:
        line = refusal(capsys, "rerun", parent.info.run_id, "--tracking-uri", client.tracking_uri)
        assert f"RUN_ID={parent.info.run_id}:" in line and "not a job" in line
    (cell, *_) = client.search_runs(
        [store["parents"][0].info.experiment_id], filter_string=f"tags.`{CELL_TAG}` != ''"
    )
    line = refusal(capsys, "rerun", cell.info.run_id, "--tracking-uri", client.tracking_uri)
    assert "a cell of a sweep, not a job" in line
    assert len(the_runs(client)) == before


def made_run(tracking_uri: str, tags: dict[str, str], params: dict[str, str]) -> str:
    """A run written by hand into the store at `tracking_uri`."""
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("made")
    run_id = client.create_run(experiment_id, tags=tags, run_name="made").info.run_id
    for key, value in params.items():
        client.log_param(run_id, key, value)
    return run_id


def composed_params(*overrides: str) -> dict[str, str]:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return config_params(compose("config", overrides=list(overrides)))


def test_an_unknown_run_id_is_one_line_and_creates_nothing(tracking_uri, capsys):
    made_run(tracking_uri, {"hydra.overrides": "seed=1"}, composed_params("seed=1"))
    line = refusal(capsys, "rerun", "0123456789abcdef", "--tracking-uri", tracking_uri)
    assert line.startswith("error: RUN_ID='0123456789abcdef' is not a run of sqlite:///")
    assert len(the_runs(MlflowClient(tracking_uri))) == 1


def test_no_store_at_the_path_is_one_line_and_creates_none(tmp_path, capsys):
    path = tmp_path / "elsewhere" / "mlflow.db"
    line = refusal(capsys, "rerun", "0123456789abcdef", "--tracking-uri", f"sqlite:///{path}")
    assert line.startswith(f"error: no store at {path}")
    assert not path.exists()


@pytest.mark.parametrize(
    ("tags", "refused"),
    [
        ({"gatelab.search": "x", "hydra.overrides": "seed=1"}, "a trial of a search"),
        ({}, "has no tag hydra.overrides, so it was not made by gatelab's src/train.py"),
    ],
)
def test_a_trial_or_a_run_not_made_by_gatelab_is_refused(tracking_uri, capsys, tags, refused):
    run_id = made_run(tracking_uri, tags, composed_params("seed=1"))
    line = refusal(capsys, "rerun", run_id, "--tracking-uri", tracking_uri)
    assert line.startswith(f"error: RUN_ID={run_id}: run {run_id} (made) ") and refused in line
    assert len(the_runs(MlflowClient(tracking_uri))) == 1


def test_a_config_changed_since_the_run_is_refused_naming_what_changed(tracking_uri, capsys):
    params = {**composed_params("seed=1"), "trainer.epochs": "7"}
    run_id = made_run(tracking_uri, {"hydra.overrides": "seed=1"}, params)
    line = refusal(capsys, "rerun", run_id, "--tracking-uri", tracking_uri)
    assert (
        "compose another config than it logged: trainer.epochs is '2000' now, '7' in the run;"
        in line
    )
    assert len(the_runs(MlflowClient(tracking_uri))) == 1


def test_overrides_that_no_longer_compose_are_refused(tracking_uri, capsys):
    run_id = made_run(tracking_uri, {"hydra.overrides": "model=transformer"}, {})
    line = refusal(capsys, "rerun", run_id, "--tracking-uri", tracking_uri)
    assert (
        "overrides (model=transformer) cannot run now: model=transformer is not an option" in line
    )


def test_the_logged_overrides_split_back_whole():
    text = "tags=[demo, team:ml] seed=2 +experiment=xor_mlp tracking.experiment='a b'"
    assert rerun.split_overrides(text) == [
        "tags=[demo, team:ml]",
        "seed=2",
        "+experiment=xor_mlp",
        "tracking.experiment='a b'",
    ]
    assert (
        rerun.quoted("gatelab sweep seed (101 jobs) it's")
        == "'gatelab sweep seed (101 jobs) it\\'s'"
    )


def test_the_train_script_and_configs_are_found():
    assert rerun.TRAIN_SCRIPT == REPO / "src" / "train.py" and rerun.CONFIG_DIR == CONFIG_DIR
