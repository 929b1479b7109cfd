"""`python -m gatelab.runs mark-dead-killed`: after a `kill -9`, the runs its process left RUNNING
are found in whichever experiment gatelab wrote them, a big sweep's own included, and marked
KILLED; a store or experiment it cannot use is one line and exit 2, reported by `gatelab.cli`."""

import subprocess

import pytest
from mlflow.tracking import MlflowClient

from gatelab import runs
from gatelab.errors import ConfigError
from gatelab.tracking import store
from gatelab.tracking.experiment import configure
from tests.helpers import PYTHON

# The experiment of its own that a sweep of 101 jobs in multirun/2026-01-02/03-04-05 gets
# (`sweep_experiment`, whose names tests/sweeps/test_cells.py checks).
BIG_SWEEP = "gatelab sweep seed (101 jobs) 2026-01-02 03-04-05"


def dead_process_tags() -> dict[str, str]:
    """Tags of a run started on this host by a process that has ended."""
    ended = subprocess.Popen([PYTHON, "-c", "pass"])
    ended.wait()
    return {**store.process_tags(), store.PID_TAG: str(ended.pid)}


@pytest.fixture
def left_running(tracking_uri: str) -> dict[str, str]:
    """A store with a run left RUNNING by a dead process in each of three experiments, and a
    live process's run in the big sweep's; their run ids by `experiment/name`."""
    configure(tracking_uri, "gatelab")
    client = MlflowClient(tracking_uri)
    run_ids = {}
    for experiment in ("gatelab", BIG_SWEEP, "other"):
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        run = client.create_run(experiment_id, run_name="dead", tags=dead_process_tags())
        run_ids[f"{experiment}/dead"] = run.info.run_id
    alive = client.create_run(
        client.get_experiment_by_name(BIG_SWEEP).experiment_id,
        run_name="alive",
        tags=store.process_tags(),
    )
    run_ids[f"{BIG_SWEEP}/alive"] = alive.info.run_id
    return run_ids


def statuses(tracking_uri: str, run_ids: dict[str, str]) -> dict[str, str]:
    client = MlflowClient(tracking_uri)
    return {name: client.get_run(run_id).info.status for name, run_id in run_ids.items()}


def test_by_default_dead_runs_of_every_experiment_are_marked_a_big_sweeps_own_included(
    tracking_uri, left_running, capsys
):
    runs.main(["mark-dead-killed", "--tracking-uri", tracking_uri])
    assert statuses(tracking_uri, left_running) == {
        "gatelab/dead": "KILLED",
        f"{BIG_SWEEP}/dead": "KILLED",
        "other/dead": "KILLED",
        f"{BIG_SWEEP}/alive": "RUNNING",
    }
    lines = capsys.readouterr().out.splitlines()
    sweep_run = left_running[f"{BIG_SWEEP}/dead"]
    assert any(
        line.startswith(f"marked KILLED: run {sweep_run} (dead) of experiment '{BIG_SWEEP}'")
        for line in lines
    ), lines
    # The store's Default experiment counts too.
    assert lines[-1] == "3 run(s) left RUNNING by a dead process on this host, in 4 experiment(s)"


def test_a_named_experiment_covers_its_big_sweeps_and_no_other(tracking_uri, left_running):
    assert runs.mark_dead_killed(tracking_uri, "gatelab", dry_run=True) == 2
    assert set(statuses(tracking_uri, left_running).values()) == {"RUNNING"}
    assert runs.mark_dead_killed(tracking_uri, "gatelab", dry_run=False) == 2
    assert statuses(tracking_uri, left_running) == {
        "gatelab/dead": "KILLED",
        f"{BIG_SWEEP}/dead": "KILLED",
        "other/dead": "RUNNING",
        f"{BIG_SWEEP}/alive": "RUNNING",
    }
    run = MlflowClient(tracking_uri).get_run(left_running[f"{BIG_SWEEP}/dead"])
    assert run.data.tags["failure_reason"] == "process died"


def test_an_unknown_experiment_is_raised_not_exited_on(tracking_uri, left_running):
    with pytest.raises(ConfigError, match="^--experiment='gatelab sweep' is not an experiment"):
        runs.mark_dead_killed(tracking_uri, "gatelab sweep", dry_run=False)
    assert set(statuses(tracking_uri, left_running).values()) == {"RUNNING"}


def refused(capsys, *arguments: str) -> str:
    """The one line on stderr with which `main` exits 2."""
    with pytest.raises(SystemExit) as exit:
        runs.main(["mark-dead-killed", *arguments])
    assert exit.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    return line


def test_an_unknown_experiment_is_one_line_naming_the_choices_and_exit_2(
    tracking_uri, left_running, capsys
):
    line = refused(capsys, "--tracking-uri", tracking_uri, "--experiment", "gatelab2")
    assert line == (
        f"error: --experiment='gatelab2' is not an experiment of {tracking_uri}: choose one of "
        f"'Default', 'gatelab', '{BIG_SWEEP}', 'other', or leave --experiment out to look in all"
    )


def test_a_store_that_is_not_there_is_one_line_and_exit_2_and_is_not_created(tmp_path, capsys):
    missing = tmp_path / "elsewhere" / "mlflow.db"
    line = refused(capsys, "--tracking-uri", f"sqlite:///{missing}")
    assert line == (
        f"error: no store at {missing}: run this from the folder the runs ran in, or name their "
        "store with --tracking-uri"
    )
    assert not missing.exists()


def test_a_store_that_cannot_be_used_is_one_line_and_exit_2_without_its_password(capsys):
    line = refused(capsys, "--tracking-uri", "http://alice:S3CRET@host:port")
    assert line.startswith("error: tracking.uri='http://***@host:port' cannot be used: ")
    assert "S3CRET" not in line
