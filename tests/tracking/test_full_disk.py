"""A store that fills during a sweep: one line, and no run left RUNNING unsaid (issue 26 item 4).

The store becomes full while the sweep runs, once its parent and cells are written, in the
sweep's own process (`full_store/sitecustomize.py`): either it cannot grow (SQLite's
`max_page_count`: the runs' statuses still change in place) or it takes no write at all, as a
full disk did (a real full tmpfs: the write-ahead log could not grow either).
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import (
    QUICK,
    REPO,
    SEEDS_BY_RATES,
    all_runs,
    runs_written,
    start_train,
    store_client,
    train_environment,
)

pytestmark = pytest.mark.slow

FULL_STORE = REPO / "tests" / "tracking" / "full_store"


def sweep_filling_its_store(workdir: Path, mode: str, *arguments: str) -> tuple[int, str, str]:
    """Run a 4-job sweep of 2 cells whose store becomes full (`mode`: `grow` or `write`) once
    its parent and cells are written; return its exit status, stdout and stderr."""
    trigger = workdir / "store_is_full"
    process = start_train(
        workdir,
        "-m",
        *QUICK,
        *SEEDS_BY_RATES,
        *arguments,
        env={"PYTHONPATH": str(FULL_STORE), "GATELAB_TEST_FULL_STORE": str(trigger)},
    )
    try:
        while runs_written(workdir / "mlflow.db") < 3:
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)  # between reads of the store, until the rows are there
        trigger.write_text(mode)
        stdout, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
    trigger.unlink()  # space freed
    return process.returncode, stdout, stderr


def statuses(workdir: Path) -> dict[str, str]:
    return {run.info.run_name: run.info.status for run in all_runs(store_client(workdir))}


def one_line(stdout: str, stderr: str) -> str:
    """The command's error line: the last of stderr, with no traceback or warning before it."""
    assert "Traceback" not in stdout + stderr and "Warning" not in stderr, stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("error: the store sqlite:///"), stderr
    return line


@pytest.mark.parametrize("sweeper", ["basic", "vectorized"])
def test_a_store_that_cannot_grow_ends_every_run_failed_in_one_line(tmp_path, sweeper):
    arguments = ["hydra/sweeper=vectorized"] if sweeper == "vectorized" else []
    returncode, stdout, stderr = sweep_filling_its_store(tmp_path, "grow", *arguments)
    assert returncode == 1, stderr
    line = one_line(stdout, stderr)
    assert (
        "is full (database or disk is full): the runs this command had open ended FAILED; "
        "free space, then run the same command again with hydra.sweep.dir="
    ) in line
    ended = statuses(tmp_path)
    # The parent, its 2 cells and (basic sweeper) the job that was running.
    assert len(ended) >= 3 and set(ended.values()) == {"FAILED"}, ended


def test_a_store_that_takes_no_write_says_its_runs_stay_running_and_how_to_end_them(tmp_path):
    returncode, stdout, stderr = sweep_filling_its_store(
        tmp_path, "write", "hydra/sweeper=vectorized"
    )
    assert returncode == 1, stderr
    line = one_line(stdout, stderr)
    assert (
        "cannot be written (database or disk is full): the runs this command had open stay "
        "RUNNING; free space, then run the same command again with hydra.sweep.dir="
    ) in line
    assert line.endswith("or end them with python -m gatelab.runs mark-dead-killed")
    assert list(statuses(tmp_path).values()) == ["RUNNING"] * 3  # the parent, its 2 cells
    # Once space is freed, the documented recovery finds them: their process is gone.
    marked = subprocess.run(
        [sys.executable, "-m", "gatelab.runs", "mark-dead-killed"],
        cwd=tmp_path,
        env=train_environment(None),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert marked.returncode == 0, marked.stderr
    assert list(statuses(tmp_path).values()) == ["KILLED"] * 3
