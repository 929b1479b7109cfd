"""Stopping a run or a sweep (Ctrl-C, `kill`, a SLURM time limit) leaves no MLflow run RUNNING."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.entities import Run

from gatelab import stopping
from tests.helpers import runs_of, start_train, statuses_in_a_copy_of_the_store_file

# Each test's store is made already in tmp_path (fixture tracking_uri): no test here is of its
# creation.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tracking_uri")]

# Long enough (a few seconds of training) to be stopped while training.
LONG = ["trainer.epochs=1000000", "trainer.print_every=0"]


def runs_in(workdir: Path) -> list[Run]:
    _, parents, jobs = runs_of(workdir)
    return parents + jobs


def sweep_in(workdir: Path) -> tuple[Run, list[Run]]:
    """The one sweep's parent run and its jobs' runs."""
    _, (parent,), jobs = runs_of(workdir)
    return parent, jobs


def test_a_stop_inside_a_deferred_block_is_raised_when_the_block_ends(stop_handlers):
    # As a bulk transaction is: the signal arrives mid-block, the block still runs to its end.
    ran_to_the_end = []
    with pytest.raises(KeyboardInterrupt), stopping.deferred():
        os.kill(os.getpid(), signal.SIGTERM)  # its handler runs before os.kill returns
        assert stopping.stopping()
        ran_to_the_end.append(True)
    assert ran_to_the_end == [True] and stopping.first_signal() == signal.SIGTERM


def test_a_stop_outside_a_deferred_block_interrupts_at_once(stop_handlers):
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        pytest.fail("not interrupted")


# Minutes of training in one compiled call (10 million steps of a 67,000-weight network):
# stopped within seconds only because the loop runs in chunks of epochs.
HEAVY = [
    "trainer.epochs=2500000",
    "trainer.shuffle=false",
    "model.hidden_units=[256,256]",
    "trainer.print_every=0",
]


def start_and_terminate(
    workdir: Path, *arguments: str, settle: float = 0.0, repeat_every: float | None = None
) -> subprocess.CompletedProcess:
    """Start `src/train.py ARGUMENTS`, send SIGTERM once a training run is RUNNING, and wait.

    Args:
        settle: seconds to wait after the run is RUNNING, to stop it in the middle of training.
        repeat_every: send SIGTERM again every so many seconds until the process ends, as a
            user pressing Ctrl-C repeatedly or a scheduler insisting would.
    The returned result's `seconds` is the time from the first SIGTERM to the process's end.
    """
    process = start_train(workdir, *arguments)
    try:
        deadline = time.monotonic() + 120
        while not any(
            run.info.status == "RUNNING" and "sweep.params" not in run.data.tags
            for run in runs_in(workdir)
        ):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no training run started"
            time.sleep(0.2)
        time.sleep(settle)
        process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        if repeat_every is not None:
            while process.poll() is None and time.monotonic() < stopped + 120:
                time.sleep(repeat_every)
                process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        # A process that did not stop is not left training after the test.
        if process.poll() is None:
            process.kill()
            process.communicate()
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    result.seconds = time.monotonic() - stopped
    return result


def test_a_terminated_run_ends_killed_in_one_line_with_sigterms_status(tmp_path):
    result = start_and_terminate(tmp_path, *LONG)
    # The shell's status for a process ended by SIGTERM, and no traceback.
    assert result.returncode == 128 + signal.SIGTERM
    assert result.stderr.splitlines()[-1] == (
        "stopped by SIGTERM: the runs this command had open ended KILLED"
    )
    assert "Traceback" not in result.stderr
    (run,) = runs_in(tmp_path)
    assert run.info.status == "KILLED"


def test_a_terminated_sweep_is_summarised_and_its_parent_and_job_end_killed(tmp_path):
    result = start_and_terminate(tmp_path, "-m", "seed=0,1", *LONG)
    assert result.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in result.stderr
    parent, children = sweep_in(tmp_path)
    # The store's file alone has both runs as they ended, the log folded in on the way out.
    copied = statuses_in_a_copy_of_the_store_file(tmp_path, tmp_path / "copy")
    assert copied == {parent.info.run_id: "KILLED", children[0].info.run_id: "KILLED"}
    assert parent.info.status == "KILLED"
    # The second job never started: Hydra's basic launcher stops at the first interruption.
    assert [child.info.status for child in children] == ["KILLED"]
    (summary,) = tmp_path.glob("multirun/*/*/sweep_summary.csv")
    assert "KILLED" in summary.read_text()


def test_a_terminated_joblib_sweep_leaves_no_job_running(tmp_path):
    result = start_and_terminate(
        tmp_path, "-m", "seed=0,1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *LONG
    )
    assert result.returncode != 0
    parent, children = sweep_in(tmp_path)
    assert parent.info.status == "KILLED"
    assert children
    assert {child.info.status for child in children} == {"KILLED"}


def test_a_long_compiled_run_stops_killed_within_seconds_of_sigterm(tmp_path):
    # Without chunks, SIGTERM waits for the whole compiled loop: minutes here.
    result = start_and_terminate(tmp_path, *HEAVY, settle=5)
    assert result.returncode != 0
    assert result.seconds < 60, result.seconds
    (run,) = runs_in(tmp_path)
    assert run.info.status == "KILLED"


def test_repeated_signals_still_end_the_run_killed(tmp_path):
    # Ctrl-C pressed again and again: later signals must not cut the ending short, which
    # would leave the run for MLflow's exit hook to mark FINISHED.
    result = start_and_terminate(tmp_path, *HEAVY, settle=5, repeat_every=0.02)
    assert result.returncode != 0
    (run,) = runs_in(tmp_path)
    assert run.info.status == "KILLED"
    # Not asserted: the line a later signal prints ("stopping: ..."); a process that has
    # already ended its run may be past Python's handlers when the next signal lands.


def test_a_sweep_stopped_repeatedly_ends_killed_and_summarised(tmp_path):
    result = start_and_terminate(tmp_path, "-m", "seed=0,1", *HEAVY, settle=5, repeat_every=0.02)
    assert result.returncode != 0
    parent, children = sweep_in(tmp_path)
    assert parent.info.status == "KILLED"
    assert [child.info.status for child in children] == ["KILLED"]
    (summary,) = tmp_path.glob("multirun/*/*/sweep_summary.csv")
    assert "KILLED" in summary.read_text()
