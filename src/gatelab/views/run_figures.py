"""A run's figures (its loss curve, its decision boundary and how it formed), drawn off-screen.

Figures are made as `matplotlib.figure.Figure`, not through pyplot: no display is needed, and
nothing keeps them (pyplot's registry would until closed, collecting garbage on each close).
"""

from typing import Any

import matplotlib
import matplotlib.patches
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from gatelab.plane import GRID_POINTS, PLANE, BoundaryView, line_in_plane

# Saved at this resolution: sharp enough to read axis labels in MLflow's artifact viewer.
DPI = 150
# Output 0 orange, 1 blue (Playground's colours), 0.5 white: readable on a white page.
OUTPUT_COLOURS = "PuOr"
SOLVED_COLOUR = "#1a7f37"
# Each hidden unit's line (pre-activation 0) in its own dash pattern.
HIDDEN_LINE_STYLES = ("--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)))
UNSOLVED_COLOUR = "#b42318"


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI)


def loss_curve(loss: np.ndarray, title: str, epochs_to_solve: int | None = None) -> Figure:
    """Loss per epoch, as the chapter plots `history.history['loss']`, marking when it solved."""
    figure = new_figure(6, 4)
    axes = figure.subplots()
    axes.plot(np.arange(1, len(loss) + 1), loss)
    if epochs_to_solve is not None:
        axes.axvline(epochs_to_solve, color=SOLVED_COLOUR, linestyle="--", linewidth=1)
        axes.plot(
            [epochs_to_solve],
            [loss[epochs_to_solve - 1]],
            "o",
            color=SOLVED_COLOUR,
            label=f"solved at epoch {epochs_to_solve}",
        )
        axes.legend(fontsize="small")
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    # Fixed margins: tight_layout measures every label and costs more than the plot itself.
    figure.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.92)
    return figure


def draw_boundary(
    axes: Axes,
    view: BoundaryView,
    inputs: np.ndarray,
    targets: np.ndarray,
    small: bool = False,
    offset: float = 0.0,
    rows: bool = True,
) -> matplotlib.image.AxesImage:
    """The plane coloured by output, the 0.5 contour, hidden units' lines and the table's rows.

    Args:
        small: a panel of many: no axis, labels or legend entries, just a frame.
        offset: drawn shifted right by this much, so several planes can share one axes.
        rows: draw the table's rows (`draw_rows`); False when the caller draws them for many
            planes at once.
    """
    low, high = PLANE
    image = axes.imshow(
        view.outputs,
        extent=(low + offset, high + offset, low, high),
        origin="lower",
        cmap=OUTPUT_COLOURS,
        vmin=0,
        vmax=1,
        interpolation="bilinear",
    )
    axis = np.linspace(low, high, GRID_POINTS)
    if view.outputs.min() < 0.5 < view.outputs.max():
        axes.contour(
            axis + offset, axis, view.outputs, levels=[0.5], colors="black", linewidths=1.5
        )
    for unit, (w1, w2, bias) in enumerate(view.hidden_lines, start=1):
        ends = line_in_plane(w1, w2, bias)
        if ends is not None:
            axes.plot(
                ends[:, 0] + offset,
                ends[:, 1],
                color="#1f1f1f",
                linestyle=HIDDEN_LINE_STYLES[(unit - 1) % len(HIDDEN_LINE_STYLES)],
                linewidth=1.3,
                label=None if small else f"hidden unit {unit} = 0",
            )
    if rows:
        draw_rows(axes, inputs, targets, small, [offset])
    if small:
        # No axis (drawing even an empty one costs more than the panel), just a frame.
        axes.add_patch(
            matplotlib.patches.Rectangle(
                (low + offset, low), high - low, high - low, fill=False, linewidth=1
            )
        )
    else:
        axes.set_xlim(low, high)
        axes.set_ylim(low, high)
        axes.set_xlabel("input 1")
        axes.set_ylabel("input 2")
    axes.set_aspect("equal")
    return image


# Panels side by side (`draw_panels`) are this many grid cells apart: their images are one.
PANEL_GAP = 6
PANEL_STEP = (PLANE[1] - PLANE[0]) * (1 + PANEL_GAP / GRID_POINTS)


def draw_panels(axes: Axes, views: list[BoundaryView]) -> None:
    """Small boundary panels side by side in one axes, the i-th shifted right by
    `i * PANEL_STEP`: what `draw_boundary(small=True)` draws for each, but each kind of thing
    once for them all (one image, one contour, one line per hidden unit, one frame line). A
    10,000-job sweep's figures (480 panels) drew in 9.0 s instead of 16.8 s with an artist each
    (`benchmarks/bench_sweep.py`, figures drawn ahead)."""
    low, high = PLANE
    # The panels' grids side by side, `PANEL_GAP` masked columns between two: one image
    # (transparent there) and one contour, which no line crosses.
    gap = np.ma.masked_all((GRID_POINTS, PANEL_GAP))
    outputs = np.ma.hstack([part for view in views for part in (view.outputs, gap)][:-1])
    right = high + (len(views) - 1) * PANEL_STEP
    colours = matplotlib.colormaps[OUTPUT_COLOURS].with_extremes(bad=(0, 0, 0, 0))
    axes.imshow(
        outputs,
        extent=(low, right, low, high),
        origin="lower",
        cmap=colours,
        vmin=0,
        vmax=1,
        interpolation="bilinear",
    )
    if any(view.outputs.min() < 0.5 < view.outputs.max() for view in views):
        # Each panel's grid points where `draw_boundary` puts them, the gap's in between.
        axis = np.linspace(low, high, GRID_POINTS)
        between = np.linspace(high, low + PANEL_STEP, PANEL_GAP + 2)[1:-1]
        xs = np.concatenate(
            [np.concatenate([axis, between]) + i * PANEL_STEP for i in range(len(views))]
        )
        axes.contour(
            xs[: outputs.shape[1]], axis, outputs, levels=[0.5], colors="black", linewidths=1.5
        )
    units = max((len(view.hidden_lines) for view in views), default=0)
    for unit in range(units):
        points = []
        for index, view in enumerate(views):
            if unit < len(view.hidden_lines):
                ends = line_in_plane(*view.hidden_lines[unit])
                if ends is not None:
                    points += [ends + [index * PANEL_STEP, 0], [[np.nan, np.nan]]]
        if points:
            line = np.concatenate(points)
            axes.plot(
                line[:, 0],
                line[:, 1],
                color="#1f1f1f",
                linestyle=HIDDEN_LINE_STYLES[unit % len(HIDDEN_LINE_STYLES)],
                linewidth=1.3,
            )
    frame = np.array([[low, low], [high, low], [high, high], [low, high], [low, low]])
    frames = [frame + [index * PANEL_STEP, 0] for index in range(len(views))]
    axes.add_collection(LineCollection(frames, colors="black", linewidths=1))
    axes.set_aspect("equal")


def draw_rows(
    axes: Axes, inputs: np.ndarray, targets: np.ndarray, small: bool, offsets: list[float]
) -> None:
    """The table's rows, targets 1 as blue dots and 0 as orange squares, on the plane drawn at
    each of `offsets`: two scatters in all (a scatter per plane costs more than its plane)."""
    for target, marker in ((1, "o"), (0, "s")):
        chosen = inputs[targets.ravel() == target]
        axes.scatter(
            np.concatenate([chosen[:, 0] + offset for offset in offsets]),
            np.tile(chosen[:, 1], len(offsets)),
            marker=marker,
            s=30 if small else 90,
            c=["#2d5f9a" if target else "#e08214"],
            edgecolors="black",
            linewidths=1,
            label=None if small else f"target {target}",
            zorder=3,
        )


def decision_boundary(
    view: BoundaryView, inputs: np.ndarray, targets: np.ndarray, title: str
) -> Figure:
    """One run's decision boundary over the input plane [-0.5, 1.5]^2."""
    figure = new_figure(5.6, 4.6)
    axes = figure.subplots()
    image = draw_boundary(axes, view, inputs, targets)
    figure.colorbar(image, ax=axes, label="output (black line: 0.5)")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(0, -0.12), ncol=2)
    axes.set_title(title, fontsize="medium")
    figure.subplots_adjust(left=0.1, right=0.92, bottom=0.25, top=0.92)
    return figure


def boundary_epochs(
    views: dict[int, BoundaryView], inputs: np.ndarray, targets: np.ndarray, title: str
) -> Figure:
    """The decision boundary after each of a few epochs, start to end, side by side."""
    # One axes holding every panel, each shifted right: a figure of many axes costs a lot more.
    low, high = PLANE
    span = high - low
    step = span * 1.12
    # Wide enough for the title when few epochs ran (a run that diverged early).
    width = max(1.9 * len(views) + 1.0, 8.0)
    figure = new_figure(width, 2.6)
    axes = figure.add_axes((0.01, 0.04, 1 - 1.0 / width - 0.01, 0.74))
    for index, (epoch, view) in enumerate(views.items()):
        image = draw_boundary(axes, view, inputs, targets, small=True, offset=index * step)
        panel_title(axes, index * step, f"epoch {epoch}", fontsize="small")
    axes.set_xlim(low - 0.01, high + (len(views) - 1) * step + 0.01)
    axes.set_ylim(low - 0.01, high + 0.01)
    axes.set_axis_off()
    colour_axes = figure.add_axes((1 - 0.75 / width, 0.1, 0.12 / width, 0.62))
    figure.colorbar(image, cax=colour_axes, label="output")
    figure.suptitle(
        f"{title}: how the boundary formed (dashed, dotted: hidden units)", fontsize="medium"
    )
    return figure


def panel_title(axes: Axes, offset: float, text: str, **style: Any) -> None:
    """The title of a panel drawn `offset` to the right in an axes of several (`draw_boundary`):
    centred just above it."""
    low, high = PLANE
    span = high - low
    axes.text(offset + low + span / 2, high + 0.04 * span, text, ha="center", va="bottom", **style)
