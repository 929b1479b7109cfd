"""A sweep's gallery of decision boundaries: each row says which seeds it shows, and its legend
names every line a panel draws (each hidden unit's own dash pattern)."""

import numpy as np
from matplotlib.text import Text

from gatelab.plane import GRID_POINTS, BoundaryView
from gatelab.views.gallery import Panel, boundary_gallery, shown_label
from gatelab.views.run_figures import HIDDEN_LINE_STYLES

INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
TARGETS = np.array([[0], [1], [1], [0]], dtype=float)


def panel(seed: int, hidden_units: int = 2) -> Panel:
    """A job's panel: an output rising across the plane, hidden lines that cross it."""
    outputs = np.tile(np.linspace(0, 1, GRID_POINTS, dtype=np.float32), (GRID_POINTS, 1))
    lines = np.array([[1.0, unit + 1.0, -1.0] for unit in range(hidden_units)])
    return Panel(f"seed={seed}", BoundaryView(outputs=outputs, hidden_lines=lines), seed % 2 == 0)


def row_labels(figure) -> list[str]:
    """The rotated labels at the left of the gallery's rows."""
    return [
        text.get_text()
        for axes in figure.axes
        for text in axes.texts
        if isinstance(text, Text) and text.get_rotation() == 90
    ]


def test_a_cell_of_many_seeds_wraps_into_rows_each_labelled_with_its_seeds():
    figure = boundary_gallery(
        {"lr=0.5": [panel(seed) for seed in range(25)]}, INPUTS, TARGETS, "title", per_row=10
    )
    # Not `lr=0.5 (11-)` over a row that starts at seed=10.
    assert row_labels(figure) == ["lr=0.5\nseed=0-9", "lr=0.5\nseed=10-19", "lr=0.5\nseed=20-24"]


def test_a_row_that_fits_says_its_seeds_too_and_other_panels_keep_the_group_alone():
    # The parent's gallery: each cell's first seeds, a sample of its jobs.
    groups = {f"lr={rate}": [panel(seed) for seed in range(4)] for rate in (0.1, 2.0)}
    figure = boundary_gallery(groups, INPUTS, TARGETS, "title", per_row=10)
    assert row_labels(figure) == ["lr=0.1\nseed=0-3", "lr=2.0\nseed=0-3"]
    # A sweep without a seed: a row per rate, each panel titled by its job's name.
    assert shown_label("lr=0.5", ["lr=0.5 units=[2]", "lr=0.5 units=[4]"]) == "lr=0.5"
    assert shown_label("lr=0.5", ["lr=0.5"]) == "lr=0.5"


def test_seeds_not_consecutive_are_named_first_and_last():
    assert shown_label("lr=1", ["seed=3", "seed=7", "seed=97"]) == "lr=1\nseed=3, ..., seed=97"
    assert shown_label("lr=1", ["seed=3", "seed=7"]) == "lr=1\nseed=3, seed=7"
    assert shown_label("lr=1", ["seed=4"]) == "lr=1\nseed=4"
    assert shown_label("", ["seed=0", "seed=1"]) == "seed=0-1"
    names = ["lr=1 units=[2]", "lr=1 units=[3]", "lr=1 units=[4]"]
    assert shown_label("lr=1", names, wrapped=True) == "lr=1\nlr=1 units=[2], ..., lr=1 units=[4]"


def test_the_legend_draws_each_hidden_units_line_as_the_panels_draw_it():
    figure = boundary_gallery({"lr=0.5": [panel(0), panel(1)]}, INPUTS, TARGETS, "title")
    (legend,) = figure.legends
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels == [
        "output 0.5",
        "hidden unit 1 = 0",
        "hidden unit 2 = 0",
        "target 1",
        "target 0",
    ]
    styles = {handle.get_label(): handle.get_linestyle() for handle in legend.legend_handles}
    # The second unit's line is dotted, as the panels draw it.
    assert (styles["hidden unit 1 = 0"], styles["hidden unit 2 = 0"]) == ("--", ":")
    drawn = {line.get_linestyle() for axes in figure.axes for line in axes.lines}
    assert drawn == {"--", ":"}


def test_units_past_the_dash_patterns_share_their_entries_and_a_perceptron_has_none():
    figure = boundary_gallery({"": [panel(0, hidden_units=6)]}, INPUTS, TARGETS, "title")
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    hidden = [label for label in labels if label.startswith("hidden")]
    assert len(hidden) == len(HIDDEN_LINE_STYLES)
    assert hidden[:3] == ["hidden units 1, 5 = 0", "hidden units 2, 6 = 0", "hidden unit 3 = 0"]
    figure = boundary_gallery({"": [panel(0, hidden_units=0)]}, INPUTS, TARGETS, "title")
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels == ["output 0.5", "target 1", "target 0"]
