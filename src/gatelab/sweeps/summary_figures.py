"""A sweep's summary figures: pure functions of its jobs' results and arrays, no MLflow.

`publish` logs them onto the sweep's run and its cells' runs; `drawn_ahead` draws them in a
second process while the children are written. Both draw them with `summary_figures`.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from matplotlib.figure import Figure

from gatelab.plane import BoundaryView
from gatelab.sweeps.intervals import wilson_interval
from gatelab.sweeps.summary import (
    CELL_GALLERY_JOBS,
    SEED_KEY,
    JobResult,
    cells_of,
    numeric_first,
    success_counts,
    success_grid,
)
from gatelab.views import sweep_figures
from gatelab.views.colours import sequence_colours
from gatelab.views.gallery import Panel, boundary_gallery

# The parent's gallery: a row per cell (at most this many), a panel per seed (at most this many).
GALLERY_ROWS = 8
GALLERY_COLUMNS = 10
# Past this many curves, `loss_curves.png` is a median and quartile band per cell.
MAX_OVERLAID_CURVES = 100
# A gallery's PNG, compressed lightly: a cell's 40 panels encode in half the time (0.2 s), in a
# file 45% larger (about 1.8 MB).
GALLERY_PNG = {"pil_kwargs": {"compress_level": 1}}
GALLERY = "decision_boundaries.png"
# The parent's figures are under this key of `summary_figures`, a cell's under its name.
PARENT = ""


class Arrays(Protocol):
    """A job's loss curve and final decision boundary (None if it has none)."""

    def loss(self, result: JobResult) -> np.ndarray: ...

    def boundary(self, result: JobResult) -> dict[str, np.ndarray] | None: ...


@dataclass(frozen=True)
class KnownArrays:
    """Loss curves and boundaries already at hand, by run id: nothing to read or download."""

    losses: dict[str, np.ndarray]
    boundaries: dict[str, dict[str, np.ndarray]]

    def loss(self, result: JobResult) -> np.ndarray:
        return self.losses.get(result.run_id, np.array([]))

    def boundary(self, result: JobResult) -> dict[str, np.ndarray] | None:
        return self.boundaries.get(result.run_id)


def summary_figures(
    swept: list[str], cells: dict[str, str], results: list[JobResult], arrays: Arrays
) -> Iterator[tuple[str, str, Figure]]:
    """Every figure of a finished sweep, one at a time (a grid of many cells need not hold them
    all): (`PARENT` or a cell's name, file name, figure), the parent's first, then each cell's
    gallery and loss band.

    Args:
        cells: the sweep's cells' run ids by name.
    """
    for file_name, figure in parent_figures(swept, results, arrays).items():
        yield PARENT, file_name, figure
    jobs_of = cell_jobs(swept, cells, results)
    colours = cell_colours(list(cells_of(results, swept)), list(cells))
    for name in cells:
        for file_name, figure in cell_figures(name, jobs_of[name], arrays, colours[name]).items():
            yield name, file_name, figure


def cell_jobs(
    swept: list[str], cells: dict[str, str], results: list[JobResult]
) -> dict[str, list[JobResult]]:
    """Each cell's jobs (`cells`: its run id by name): the runs that are its children, else the
    jobs its name matches.

    A cell is named by its jobs' overrides as typed (`lr=1`), their values by their params as
    configured (`1.0`).
    """
    by_name = cells_of(results, swept)
    children: dict[str, list[JobResult]] = {}
    for result in results:
        children.setdefault(result.parent_run_id, []).append(result)
    return {name: children.get(run_id) or by_name.get(name, []) for name, run_id in cells.items()}


def cell_figures(
    name: str, jobs: list[JobResult], arrays: Arrays, colour: str
) -> dict[str, Figure]:
    """A cell's `GALLERY` (its first `CELL_GALLERY_JOBS` jobs, if they have boundaries) and
    `loss_band.png` (its jobs' median loss and quartiles)."""
    figures = {}
    boundaries = gallery({name: jobs[:CELL_GALLERY_JOBS]}, jobs, arrays, name)
    if boundaries is not None:
        figures[GALLERY] = boundaries
    curves = [arrays.loss(result) for result in jobs]
    title = f"loss of {len(jobs)} seeds: {name}"
    figures["loss_band.png"] = sweep_figures.loss_bands({name: curves}, title, [colour])
    return figures


def cell_colours(ordered: list[str], names: list[str]) -> dict[str, str]:
    """Each cell's colour (`records.COLOUR_TAG`) by name: its own, in the order of its values
    (the cells of `ordered`, then those that have no job yet), as the figures colour them."""
    order = [*ordered, *(name for name in names if name not in ordered)]
    return dict(zip(order, sequence_colours(len(order)), strict=True))


def parent_figures(swept: list[str], results: list[JobResult], arrays: Arrays) -> dict[str, Figure]:
    """The parent's PNGs by file name: success rates, loss curves, epochs to solve, boundaries."""
    compared = [key for key in swept if key != SEED_KEY]
    pngs = {}
    for key in compared:
        values, solved, jobs = success_counts(results, key)
        bounds = [wilson_interval(count, total) for count, total in zip(solved, jobs, strict=True)]
        pngs[f"success_rate_by_{key}.png"] = sweep_figures.success_rate_bars(
            values, solved, jobs, key, [(bound.low, bound.high) for bound in bounds if bound]
        )
    if len(compared) >= 2:
        rows, columns, rates, intervals = success_grid(results, compared[0], compared[1])
        name = f"success_rate_{compared[0]}_x_{compared[1]}.png"
        pngs[name] = sweep_figures.success_heatmap(
            rows, columns, rates, compared[0], compared[1], intervals
        )
    colour_key = (
        "optimizer.learning_rate"
        if "optimizer.learning_rate" in compared
        else (compared[0] if compared else None)
    )
    curves = [arrays.loss(result) for result in results]
    cells = cells_of(results, swept)
    if cells and len(results) > MAX_OVERLAID_CURVES:
        by_run = dict(zip((result.run_id for result in results), curves, strict=True))
        pngs["loss_curves.png"] = sweep_figures.loss_bands(
            {name: [by_run[job.run_id] for job in jobs] for name, jobs in cells.items()},
            f"loss of {len(results)} jobs, per cell",
        )
    else:
        colour_values = (
            [result.values.get(colour_key, "") for result in results] if colour_key else None
        )
        pngs["loss_curves.png"] = sweep_figures.overlaid_loss_curves(
            curves,
            colour_values,
            colour_key,
            distinct=sorted(set(colour_values or [""]), key=numeric_first),
        )
    group_key = colour_key or SEED_KEY
    if results and group_key in swept:
        values, _, jobs = success_counts(results, group_key)
        epochs = [
            [
                result.epochs_to_solve
                for result in results
                if result.values[group_key] == value and result.solved and result.epochs_to_solve
            ]
            for value in values
        ]
        pngs["epochs_to_solve.png"] = sweep_figures.epochs_to_solve_by_value(
            values, epochs, jobs, group_key
        )
    rows = gallery_rows(results, swept)
    boundaries = gallery(rows, results, arrays)
    if boundaries is not None:
        pngs[GALLERY] = boundaries
    return pngs


def gallery_rows(results: list[JobResult], swept: list[str]) -> dict[str, list[JobResult]]:
    """The parent gallery's rows: a cell's seeds per row, else a row per value of the first key."""
    cells = cells_of(results, swept)
    if cells:
        rows = cells
    else:
        keys = swept[:1]
        rows = {}
        ordered = sorted(
            results, key=lambda result: [numeric_first(result.values[key]) for key in swept]
        )
        for result in ordered:
            label = ", ".join(f"{key}={result.values[key]}" for key in keys if key != SEED_KEY)
            rows.setdefault(label, []).append(result)
    return {
        label: members[:GALLERY_COLUMNS] for label, members in list(rows.items())[:GALLERY_ROWS]
    }


def gallery(
    rows: dict[str, list[JobResult]],
    results: list[JobResult],
    arrays: Arrays,
    name: str = "",
) -> Figure | None:
    """`decision_boundaries.png`: a panel per job of `rows`, out of all `results`, with a
    footnote saying how many it shows when not every one.

    Args:
        name: what the jobs are (a cell's name), for the title.
    """
    groups: dict[str, list[Panel]] = {}
    shown: list[JobResult] = []
    table = None
    for label, members in rows.items():
        for result in members:
            found = arrays.boundary(result)
            if not found:
                continue
            table = found
            view = BoundaryView(
                outputs=found["outputs"].astype(np.float32),
                hidden_lines=found["hidden_lines"],
            )
            title = (
                f"{SEED_KEY}={result.values[SEED_KEY]}"
                if SEED_KEY in result.values
                else result.name
            )
            groups.setdefault(label, []).append(Panel(title, view, result.solved))
            shown.append(result)
    if table is None:
        return None
    footnote = ""
    if len(shown) < len(results):
        shown_ids = {result.run_id for result in shown}
        rest = [result for result in results if result.run_id not in shown_ids]
        footnote = (
            f"a sample: {len(shown)} of {len(results)} jobs shown; the other {len(rest)}: "
            f"{sum(result.solved for result in rest)} solved (see sweep_summary.csv)"
        )
    solved = sum(result.solved for result in results)
    return boundary_gallery(
        groups,
        table["inputs"],
        table["targets"],
        f"decision boundaries{f' of {name}' if name else ''}: {solved}/{len(results)} jobs solved",
        footnote,
        # A cell's own gallery of 40 seeds: rows of GALLERY_COLUMNS.
        per_row=GALLERY_COLUMNS,
    )


def save_kwargs(file_name: str) -> dict | None:
    """How a figure of this name is saved as PNG (galleries compressed lightly)."""
    return GALLERY_PNG if file_name == GALLERY else None
