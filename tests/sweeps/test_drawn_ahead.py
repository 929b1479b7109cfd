"""A vectorized sweep's summary figures, drawn in a second process while its children are written
(`sweeps.drawn_ahead`): the same pictures as drawn from the store afterwards, and drawn in place
whenever the ones drawn ahead are not of the results published or failed."""

import json
import logging
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from gatelab.sweeps import drawn_ahead
from gatelab.sweeps.results import JobArrays, read_results
from gatelab.sweeps.summary import JobResult
from gatelab.sweeps.summary_figures import PARENT, save_kwargs, summary_figures
from gatelab.sweeps.sweep_folder import CELLS_FILE, SweepArrays
from tests.helpers import QUICK, cells_of, runs_of
from tests.helpers import run_train as train

SWEPT = ["seed", "optimizer.learning_rate"]


def pixels(path: Path) -> np.ndarray:
    return matplotlib.image.imread(path)


@pytest.mark.slow
def test_the_figures_drawn_ahead_are_those_drawn_from_the_store(tmp_path, monkeypatch):
    command = ["-m", "seed=range(12)", "optimizer.learning_rate=0.1,2.0", *QUICK]
    result = train(tmp_path, *command, "hydra/sweeper=vectorized")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the summary's figures drawn ahead in " in result.stdout
    client, (parent,), jobs = runs_of(tmp_path)
    assert len(jobs) == 24
    (sweep_dir,) = tmp_path.glob("multirun/*/*")
    assert not (sweep_dir / drawn_ahead.FOLDER).exists()  # removed once logged

    # The same figures, drawn here from what the store and the sweep folder hold.
    monkeypatch.chdir(tmp_path)
    cells = json.loads((sweep_dir / CELLS_FILE).read_text())  # run ids by cell name
    kept = SweepArrays.load(sweep_dir)
    stored = read_results(client, parent.info.run_id, SWEPT)
    arrays = JobArrays(client, kept.losses, kept.boundaries, fetch=False)
    runs = {PARENT: parent.info.run_id, **cells}
    assert [cell.info.run_name for cell in cells_of(tmp_path)] == list(cells)
    compared = 0
    for target, name, figure in summary_figures(SWEPT, cells, stored, arrays):
        here = tmp_path / "here" / target / name
        here.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(here, **(save_kwargs(name) or {}))
        logged = client.download_artifacts(runs[target], name, str(tmp_path / "logged" / target))
        assert np.array_equal(pixels(Path(logged)), pixels(here)), (target, name)
        compared += 1
    # The parent's five (success rate, loss curves, epochs, gallery) and two a cell.
    assert compared == 4 + 2 * 2


def results(count: int, solved: int) -> list[JobResult]:
    return [
        JobResult(
            number=number,
            name=f"seed={number}",
            values={"seed": str(number), "optimizer.learning_rate": "0.5"},
            loss=0.1,
            accuracy=1.0 if number < solved else 0.5,
            epochs_to_solve=100 if number < solved else None,
            status="FINISHED",
            run_id=f"job {number}",
        )
        for number in range(count)
    ]


def start(sweep_dir: Path, drawn: list[JobResult], boundaries: dict | None = None) -> str:
    losses = {result.run_id: np.linspace(0.3, 0.1, 50) for result in drawn}
    drawn_ahead.start("sweep", sweep_dir, SWEPT, {}, drawn, losses, boundaries or {})
    return drawn_ahead.fingerprint(SWEPT, {}, drawn)


def test_figures_are_taken_only_when_drawn_from_the_rows_published(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    drawn_from = start(tmp_path, results(4, solved=2))
    # Another run id is the same row (the drawing stands a job's number in for it) ...
    renamed = [
        JobResult(**{**vars(result), "run_id": f"run {index}"})
        for index, result in enumerate(results(4, solved=2))
    ]
    assert drawn_ahead.fingerprint(SWEPT, {}, renamed) == drawn_from
    # ... another outcome is not.
    assert drawn_ahead.fingerprint(SWEPT, {}, results(4, solved=3)) != drawn_from
    assert drawn_ahead.fingerprint(SWEPT, {"lr=0.5": "cell"}, renamed) != drawn_from

    files = drawn_ahead.take("sweep", SWEPT, {}, renamed)
    assert files is not None and set(files) == {PARENT}
    assert {"loss_curves.png", "success_rate_by_optimizer.learning_rate.png"} <= set(files[PARENT])
    assert all(path.is_file() for path in files[PARENT].values())
    assert drawn_ahead.take("sweep", SWEPT, {}, renamed) is None  # taken once

    start(tmp_path, results(4, solved=2))
    assert drawn_ahead.take("sweep", SWEPT, {}, results(4, solved=3)) is None
    assert "drawn ahead are of other results: drawn here" in caplog.text


def test_a_drawing_that_fails_says_why_and_leaves_the_figures_to_be_drawn_here(tmp_path, caplog):
    drawn = results(2, solved=1)
    # A boundary without its arrays: the drawing process raises.
    start(tmp_path, drawn, boundaries={"job 0": {"outputs": None}})
    assert drawn_ahead.take("sweep", SWEPT, {}, drawn) is None
    assert "failed to draw ahead (" in caplog.text
    assert "drawn here" in caplog.text


def test_a_stopped_sweep_stops_its_drawing_and_removes_its_files(tmp_path):
    start(tmp_path, results(400, solved=200))
    process = drawn_ahead._STARTED["sweep"].process
    drawn_ahead.discard("sweep", tmp_path)
    assert process.poll() is not None  # ended, not left drawing
    assert not (tmp_path / drawn_ahead.FOLDER).exists()
    assert "sweep" not in drawn_ahead._STARTED


def test_a_drawing_that_cannot_start_leaves_the_figures_to_be_drawn_at_the_end(
    tmp_path, monkeypatch, caplog
):
    def no_process(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(drawn_ahead.subprocess, "Popen", no_process)
    start(tmp_path, results(2, solved=1))
    assert "cannot be drawn ahead ([Errno 28] No space left on device): drawn at the end" in (
        caplog.text
    )
    assert drawn_ahead.take("sweep", SWEPT, {}, results(2, solved=1)) is None
    assert not (tmp_path / drawn_ahead.FOLDER).exists()


def test_nothing_drawn_ahead_costs_no_fingerprint(monkeypatch):
    # A resumed or sharded sweep's summary: no drawing started, its rows not hashed (about 1 s
    # at 100,000 jobs).
    def hashed(*args):
        raise AssertionError("fingerprint computed with no drawing started")

    monkeypatch.setattr(drawn_ahead, "fingerprint", hashed)
    assert drawn_ahead.take("a sweep never drawn ahead", SWEPT, {}, results(3, solved=1)) is None
