"""A sweep's gallery of decision boundaries: a small panel per job, a row per cell."""

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gatelab.plane import PLANE, BoundaryView
from gatelab.views.run_figures import (
    HIDDEN_LINE_STYLES,
    PANEL_STEP,
    SOLVED_COLOUR,
    UNSOLVED_COLOUR,
    draw_panels,
    draw_rows,
    new_figure,
    panel_title,
)


@dataclass(frozen=True)
class Panel:
    """One job in a sweep's gallery of decision boundaries."""

    title: str
    view: BoundaryView
    solved: bool


def boundary_gallery(
    groups: dict[str, list[Panel]],
    inputs: np.ndarray,
    targets: np.ndarray,
    title: str,
    footnote: str = "",
    per_row: int | None = None,
) -> Figure:
    """One small decision-boundary panel per job, a row per group (a cell), with a legend.

    A panel's title is short (`seed=3`) and coloured by its outcome, the group its row's label:
    readable at the size of MLflow's artifact preview.

    Args:
        per_row: at most this many panels a row; a longer group goes on over more rows, each
            labelled with the panels it shows (`gallery_rows`).
    """
    rows = gallery_rows(groups, per_row)
    columns = max(len(panels) for _, panels in rows)
    figure = new_figure(max(1.6 * columns + 0.9, 6.0), 1.75 * len(rows) + 1.5)
    # A row is one axes holding its panels side by side (as `boundary_epochs` does): a figure
    # of an axes per panel spends most of its time making and drawing those axes.
    row_axes = figure.subplots(len(rows), 1, squeeze=False)[:, 0]
    low, high = PLANE
    step = PANEL_STEP
    for axes, (label, panels) in zip(row_axes, rows, strict=True):
        axes.set_axis_off()
        draw_panels(axes, [panel.view for panel in panels])
        for column, panel in enumerate(panels):
            mark = "solved" if panel.solved else "not solved"
            colour = SOLVED_COLOUR if panel.solved else UNSOLVED_COLOUR
            panel_title(axes, column * step, f"{panel.title}: {mark}", fontsize=9, color=colour)
        draw_rows(axes, inputs, targets, True, [column * step for column in range(len(panels))])
        # Every row as wide as the widest, so a short row's panels keep their size.
        axes.set_xlim(low - 0.01, high + (columns - 1) * step + 0.01)
        axes.set_ylim(low - 0.01, high + 0.01)
        if label:
            axes.text(
                -0.08 / columns,
                0.5,
                label,
                transform=axes.transAxes,
                rotation=90,
                ha="right",
                va="center",
                fontsize=10,
                fontweight="bold",
                multialignment="center",
            )
    figure.suptitle(title, fontsize="large")
    hidden_units = max(len(panel.view.hidden_lines) for _, panels in rows for panel in panels)
    handles = legend_handles(hidden_units)
    # One row of entries when the figure is wide enough, else two (and room made for them).
    width = figure.get_figwidth()
    legend_rows = 1 if width >= 1.45 * len(handles) else 2
    figure.legend(
        handles=handles,
        loc="lower center",
        ncol=-(-len(handles) // legend_rows),
        fontsize=9,
        frameon=False,
        bbox_to_anchor=(0.5, 0.35 / figure.get_figheight()),
    )
    if footnote:
        figure.text(
            0.5, 0.08 / figure.get_figheight(), footnote, ha="center", va="bottom", fontsize=9
        )
    figure.subplots_adjust(
        left=0.5 / width,
        right=0.99,
        top=1 - 0.7 / figure.get_figheight(),
        bottom=(0.85 + 0.25 * (legend_rows - 1)) / figure.get_figheight(),
        hspace=0.35,
        wspace=0.08,
    )
    return figure


def gallery_rows(
    groups: dict[str, list[Panel]], per_row: int | None
) -> list[tuple[str, list[Panel]]]:
    """The gallery's rows, each with its label (`shown_label`): a group of more than `per_row`
    panels goes on over more rows."""
    rows = []
    for group, panels in groups.items():
        size = per_row or len(panels)
        wrapped = len(panels) > size
        for start in range(0, len(panels), size):
            shown = panels[start : start + size]
            rows.append((shown_label(group, [panel.title for panel in shown], wrapped), shown))
    return rows


def shown_label(group: str, titles: list[str], wrapped: bool = False) -> str:
    """A row's label: its group, then the panels it shows when they are named by one key
    (`lr=0.5` / `seed=10-19`, or first and last: `seed=3, ..., seed=97`) or the group goes on
    over more rows (which then say their first and last panels); else the group alone."""
    keys, values = zip(*(title.partition("=")[::2] for title in titles), strict=True)
    one_key = len(set(keys)) == 1 and not any(" " in value for value in values)
    if not (one_key or wrapped):
        return group
    numbers = [int(value) if value.isdigit() else None for value in values]
    first = numbers[0]
    consecutive = first is not None and numbers == list(range(first, first + len(numbers)))
    if len(titles) == 1:
        shown = titles[0]
    elif one_key and consecutive:
        shown = f"{keys[0]}={values[0]}-{values[-1]}"
    elif len(titles) == 2:
        shown = f"{titles[0]}, {titles[1]}"
    else:
        shown = f"{titles[0]}, ..., {titles[-1]}"
    if shown == group or not group:
        return shown
    return f"{group}\n{shown}"


def legend_handles(hidden_units: int) -> list[Line2D]:
    """The gallery's legend: the 0.5 contour, each hidden unit's line in its own dash pattern
    (as `draw_boundary` draws them; units past the patterns share them) and the table's rows."""
    hidden = []
    for index, style in enumerate(HIDDEN_LINE_STYLES[:hidden_units]):
        units = range(index + 1, hidden_units + 1, len(HIDDEN_LINE_STYLES))
        label = f"hidden unit{'s' if len(units) > 1 else ''} {', '.join(map(str, units))} = 0"
        hidden.append(Line2D([], [], color="#1f1f1f", linestyle=style, linewidth=1.3, label=label))
    return [
        Line2D([], [], color="black", linewidth=1.5, label="output 0.5"),
        *hidden,
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markerfacecolor="#2d5f9a",
            markeredgecolor="black",
            label="target 1",
        ),
        Line2D(
            [],
            [],
            marker="s",
            linestyle="",
            markerfacecolor="#e08214",
            markeredgecolor="black",
            label="target 0",
        ),
    ]
