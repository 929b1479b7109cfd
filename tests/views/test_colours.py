"""The colours that tell a sweep's cells and a study's trials apart, in the UI and in figures:
each its own, in the order of its values, never two alike (MLflow's bars carry no names)."""

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from gatelab.sweeps.summary_figures import cell_colours
from gatelab.tracking.records import COLOUR_TAG, outcome_colour
from gatelab.views.colours import sequence_colour, sequence_colours
from tests.helpers import cells_of, run_train, runs_of


def lightness(colour: str) -> float:
    """Relative luminance (sRGB weights), enough to order dark from light."""
    return float(np.dot(to_rgb(colour), (0.2126, 0.7152, 0.0722)))


def test_colours_in_order_are_distinct_and_go_from_dark_to_light():
    colours = sequence_colours(12)
    assert len(set(colours)) == 12
    assert all(colour.startswith("#") and len(colour) == 7 for colour in colours)
    lightnesses = [lightness(colour) for colour in colours]
    assert lightnesses == sorted(lightnesses) and lightnesses[0] < 0.1 < 0.5 < lightnesses[-1]
    # Neither the outcome's green nor its red: a cell's colour does not say solved or not.
    assert not {outcome_colour(1.0), outcome_colour(0.0)} & set(sequence_colours(40))


def test_a_position_past_the_last_takes_the_last_colour_and_one_thing_the_first():
    assert sequence_colour(25, 20) == sequence_colour(19, 20) == sequence_colours(20)[-1]
    assert sequence_colour(0, 1) == sequence_colours(1)[0] == sequence_colours(5)[0]


def test_cells_are_coloured_in_the_order_of_their_values_then_those_with_no_job():
    # `ordered`: the cells with jobs, sorted by value (`summary.cells_of`); `names`: every cell
    # the sweep opened, in the order typed (`lr=2` has no job yet: a stopped sweep).
    colours = cell_colours(["lr=0.05", "lr=0.1", "lr=0.5"], ["lr=0.5", "lr=0.05", "lr=2", "lr=0.1"])
    expected = sequence_colours(4)
    assert colours == {
        "lr=0.05": expected[0],
        "lr=0.1": expected[1],
        "lr=0.5": expected[2],
        "lr=2": expected[3],
    }


@pytest.mark.slow
@pytest.mark.usefixtures("tracking_uri")
def test_a_sweeps_cells_each_have_their_own_colour_and_its_jobs_their_outcomes(tmp_path):
    # Typed out of order: the colours follow the values. At 30 epochs no seed solves, so every
    # cell's rate is 0: once one colour, now three.
    arguments = [
        "-m",
        "hydra/sweeper=vectorized",
        "seed=0,1",
        "optimizer.learning_rate=1.0,0.05,0.5",
    ]
    result = run_train(tmp_path, *arguments, "trainer.epochs=30", "trainer.print_every=0")
    assert result.returncode == 0, result.stderr[-3000:]
    cells = sorted(cells_of(tmp_path), key=lambda cell: float(cell.info.run_name[3:]))
    assert [cell.info.run_name for cell in cells] == ["lr=0.05", "lr=0.5", "lr=1.0"]
    assert {cell.data.metrics["success_rate"] for cell in cells} == {0.0}
    assert [cell.data.tags[COLOUR_TAG] for cell in cells] == sequence_colours(3)
    _, _, jobs = runs_of(tmp_path)
    assert len(jobs) == 6
    for job in jobs:
        assert job.data.tags[COLOUR_TAG] == outcome_colour(job.data.metrics["solved"])
