"""A sweep's summary figures drawn in a second process while its children are written.

Once a vectorized sweep's population has trained, every job's result, loss curve and gallery
boundary is known, though no child run is written yet, and the figures need nothing else.
Writing the children keeps one core busy (the SQL bulk writer is one thread); drawing the
figures (about 15 s of a 10,000-job sweep, docs/speed.md) can take the other. `publish` takes
the files when they were drawn from the results it publishes (`fingerprint`: everything of a
row but its run id, which the drawing process stands in for) and draws the figures itself when
they were not, or when the drawing failed.
"""

import atexit
import hashlib
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import time
from dataclasses import astuple, dataclass, replace
from pathlib import Path

import numpy as np

from gatelab.sweeps.draw_figures import INPUT_FILE, MANIFEST_FILE
from gatelab.sweeps.results import RecordData, job_result
from gatelab.sweeps.summary import JobResult
from gatelab.sweeps.sweep_folder import Sweep
from gatelab.tracking.records import RunRecord

log = logging.getLogger(__name__)

# In the sweep folder while the figures are drawn and logged; removed once they are.
FOLDER = ".summary_figures"
LOG_FILE = "log.txt"


@dataclass
class _Drawing:
    process: subprocess.Popen
    folder: Path


# The drawing processes this process started, by sweep run id.
_STARTED: dict[str, _Drawing] = {}


def fingerprint(swept: list[str], cells: dict[str, str], results: list[JobResult]) -> str:
    """What a sweep's figures are drawn from: its keys, its cells and each row but its run id."""
    rows = [astuple(replace(result, run_id="")) for result in results]
    text = json.dumps([swept, cells, rows], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def start(
    sweep_run_id: str,
    sweep_dir: Path,
    swept: list[str],
    cells: dict[str, str],
    results: list[JobResult],
    losses: dict[str, np.ndarray],
    boundaries: dict[str, dict[str, np.ndarray]],
) -> None:
    """Start drawing the summary figures of sweep `sweep_run_id` from `results` and their
    arrays (`losses`, `boundaries`, by each result's run id) in a process of its own; if it
    cannot start (a full disk, say), the summary draws them."""
    folder = Path(sweep_dir) / FOLDER
    handed = (swept, cells, results, losses, boundaries, fingerprint(swept, cells, results))
    try:
        _STARTED[sweep_run_id] = _Drawing(_start(folder, handed), folder)
    except (OSError, pickle.PicklingError, subprocess.SubprocessError) as error:
        log.warning("the summary's figures cannot be drawn ahead (%s): drawn at the end", error)
        shutil.rmtree(folder, ignore_errors=True)


def _start(folder: Path, handed: tuple) -> subprocess.Popen:
    """`draw_figures` started on what `handed` holds, written into `folder` first."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with (folder / INPUT_FILE).open("wb") as file:
        pickle.dump(handed, file, protocol=pickle.HIGHEST_PROTOCOL)
    source = str(Path(__file__).resolve().parents[2])  # `gatelab`'s folder, installed or not
    paths = [source, *filter(None, [os.environ.get("PYTHONPATH")])]
    environment = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": os.pathsep.join(paths)}
    with (folder / LOG_FILE).open("w") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "gatelab.sweeps.draw_figures", str(folder)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
        )


def start_from_records(
    sweep: Sweep,
    sweep_dir: Path,
    records: list[RunRecord],
    losses: dict[int, np.ndarray],
    boundaries: dict[int, dict[str, np.ndarray]],
) -> None:
    """Start drawing the summary figures of `sweep`, whose every job is one of `records`, not
    yet written: its rows as `results.hold` will keep them once written, but each job's number
    standing in for its run id (`losses`, `boundaries`: by job number)."""
    ordered = sorted(records, key=lambda record: record.job_number)
    results = [
        job_result(
            record.name,
            _stand_in(record.job_number),
            record.status,
            RecordData.of(record),
            sweep.swept,
        )
        for record in ordered
    ]
    start(
        sweep.run_id,
        sweep_dir,
        sweep.swept,
        sweep.cells,
        results,
        {_stand_in(number): loss for number, loss in losses.items()},
        {_stand_in(number): arrays for number, arrays in boundaries.items()},
    )


def _stand_in(number: int) -> str:
    return f"job {number}"


def take(
    sweep_run_id: str, swept: list[str], cells: dict[str, str], results: list[JobResult]
) -> dict[str, dict[str, Path]] | None:
    """The figures drawn ahead for sweep `sweep_run_id`, once drawn, as PNG files by target (a
    cell's name, or `summary_figures.PARENT`) and file name; None if none were started, or they
    were drawn from other results than `results` (of keys `swept` and `cells`: their
    `fingerprint`, computed only when a drawing was started), or the drawing failed."""
    drawing = _STARTED.pop(sweep_run_id, None)
    if drawing is None:
        return None
    started = time.perf_counter()
    try:
        code = drawing.process.wait()
    finally:
        drawing.process.kill()  # a stop while waiting stops the drawing too
    manifest = drawing.folder / MANIFEST_FILE
    if code != 0 or not manifest.is_file():
        lines = (drawing.folder / LOG_FILE).read_text().strip().splitlines() or [f"exit {code}"]
        log.warning("the summary's figures failed to draw ahead (%s): drawn here", lines[-1])
        return None
    content = json.loads(manifest.read_text())
    if content["fingerprint"] != fingerprint(swept, cells, results):
        log.info("the summary's figures drawn ahead are of other results: drawn here")
        return None
    log.info(
        "the summary's figures drawn ahead in %.2f s: waited %.2f s",
        content["seconds"],
        time.perf_counter() - started,
    )
    return {
        target: {name: drawing.folder / path for name, path in files.items()}
        for target, files in content["figures"].items()
    }


def discard(sweep_run_id: str, sweep_dir: Path) -> None:
    """Stop drawing the figures of sweep `sweep_run_id`, if still drawn, and remove them."""
    drawing = _STARTED.pop(sweep_run_id, None)
    if drawing is not None:
        drawing.process.kill()
        drawing.process.wait()
    shutil.rmtree(Path(sweep_dir) / FOLDER, ignore_errors=True)


@atexit.register
def _stop_all() -> None:
    for drawing in _STARTED.values():
        drawing.process.kill()
