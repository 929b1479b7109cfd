"""The chapter's figures, drawn off-screen.

Figures are made as `matplotlib.figure.Figure`, not through pyplot: no display is needed, and
nothing keeps them (pyplot's registry would until closed, collecting garbage on each close).
"""

from dataclasses import dataclass

import matplotlib
import matplotlib.patches
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

# Saved at this resolution: sharp enough to read axis labels in MLflow's artifact viewer.
DPI = 150
# The input plane of the decision-boundary pictures, as TensorFlow Playground draws it.
PLANE = (-0.5, 1.5)
GRID_POINTS = 81
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


def success_rate_bars(
    values: list[str], solved: list[int], jobs: list[int], parameter: str
) -> Figure:
    """Fraction of jobs reaching 100% accuracy for each value of a swept parameter, as k/n."""
    figure = new_figure(6, 4)
    axes = figure.subplots()
    rates = [k / n if n else 0.0 for k, n in zip(solved, jobs, strict=True)]
    bars = axes.bar(range(len(values)), rates)
    axes.bar_label(bars, [f"{k}/{n}" for k, n in zip(solved, jobs, strict=True)], padding=2)
    axes.set_xticks(range(len(values)), values, rotation=45 if len(values) > 6 else 0)
    axes.set_ylim(0, 1.1)
    axes.set_xlabel(parameter)
    axes.set_ylabel("success rate (accuracy 1.0)")
    axes.set_title(f"success rate by {parameter}: {sum(solved)}/{sum(jobs)} jobs solved")
    figure.tight_layout()
    return figure


def epochs_to_solve_by_value(
    values: list[str], epochs: list[list[int]], jobs: list[int], parameter: str
) -> Figure:
    """Each solved job's `epochs_to_solve` per value of a swept parameter, with its median."""
    figure = new_figure(6, 4)
    axes = figure.subplots()
    rng = np.random.default_rng(0)
    for index, solved_epochs in enumerate(epochs):
        if solved_epochs:
            jitter = rng.uniform(-0.15, 0.15, len(solved_epochs))
            axes.plot(index + jitter, solved_epochs, "o", color="C0", alpha=0.7)
            axes.plot(
                [index - 0.3, index + 0.3], [np.median(solved_epochs)] * 2, color="black", lw=2
            )
    labels = [
        f"{value}\n{len(solved)}/{n} solved"
        for value, solved, n in zip(values, epochs, jobs, strict=True)
    ]
    axes.set_xticks(range(len(values)), labels, fontsize="small")
    axes.set_xlim(-0.6, len(values) - 0.4)
    axes.set_xlabel(parameter)
    axes.set_ylabel("epochs_to_solve (solved jobs; bar: median)")
    axes.set_title(f"epochs_to_solve by {parameter}")
    axes.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    return figure


def success_heatmap(
    rows: list[str],
    columns: list[str],
    rates: np.ndarray,
    row_parameter: str,
    column_parameter: str,
) -> Figure:
    """Success rate for every pair of values of two swept parameters."""
    figure = new_figure(1.2 * len(columns) + 3, 0.6 * len(rows) + 2.5)
    axes = figure.subplots()
    image = axes.imshow(rates, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(columns)), columns, rotation=45 if len(columns) > 6 else 0)
    axes.set_yticks(range(len(rows)), rows)
    axes.set_xlabel(column_parameter)
    axes.set_ylabel(row_parameter)
    for (i, j), rate in np.ndenumerate(rates):
        if np.isfinite(rate):
            axes.text(
                j,
                i,
                f"{rate:.2f}",
                ha="center",
                va="center",
                color="white" if rate < 0.5 else "black",
            )
    figure.colorbar(image, ax=axes, label="success rate")
    axes.set_title("success rate")
    figure.tight_layout()
    return figure


def overlaid_loss_curves(
    losses: list[np.ndarray], colour_values: list[str] | None, colour_parameter: str | None
) -> Figure:
    """Every job's loss curve on one log-scale axes, one colour per value of `colour_parameter`."""
    figure = new_figure(7, 4.5)
    axes = figure.subplots()
    distinct = sorted(set(colour_values or [""]), key=numeric_first)
    # Distinct, saturated colours (no pale yellow lost on white); a gradient past ten values.
    if len(distinct) <= 10:
        colours = matplotlib.colormaps["tab10"](np.arange(len(distinct)))
    else:
        colours = matplotlib.colormaps["plasma"](np.linspace(0, 0.8, len(distinct)))
    colour_of = dict(zip(distinct, colours, strict=True))
    # One LineCollection per colour: thousands of curves (a vectorized sweep) draw in about
    # a second, where one `plot` call per curve took half a minute.
    for value in distinct:
        curves = [
            finite_points(loss)
            for index, loss in enumerate(losses)
            if (colour_values[index] if colour_values else "") == value
        ]
        label = f"{colour_parameter}={value}" if colour_parameter else None
        axes.add_collection(
            LineCollection(curves, colors=[colour_of[value]], alpha=0.6, label=label)
        )
    axes.autoscale()
    axes.set_yscale("log")
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss (log scale)")
    axes.set_title(f"loss curves of {len(losses)} jobs")
    if colour_parameter:
        axes.legend(fontsize="small", loc="upper right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def finite_points(loss: np.ndarray) -> np.ndarray:
    """(epoch, loss) rows of a curve for a log axis: no diverged run's inf or NaN, no zero."""
    points = np.column_stack([np.arange(1, len(loss) + 1), loss])
    return points[np.isfinite(loss) & (loss > 0)]


def numeric_first(value: str) -> tuple:
    """Sort key for swept values: numbers by value (0.05 before 0.1), then the rest by name."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


@dataclass(frozen=True)
class BoundaryView:
    """What a 2-input network computes over the plane, for a decision-boundary picture.

    Args:
        outputs: the output at each point of `plane_grid()`, shape (GRID_POINTS, GRID_POINTS),
            rows along the second input.
        hidden_lines: per unit of the first hidden layer, its kernel and bias `(w1, w2, b)`:
            the unit's line is where `w1 * x1 + w2 * x2 + b = 0`. Empty for a perceptron.
    """

    outputs: np.ndarray
    hidden_lines: np.ndarray


def plane_grid() -> np.ndarray:
    """The points of the plane as rows `(x1, x2)`, x1 varying fastest."""
    axis = np.linspace(*PLANE, GRID_POINTS, dtype=np.float32)
    first, second = np.meshgrid(axis, axis)
    return np.column_stack([first.ravel(), second.ravel()])


def draw_boundary(
    axes: Axes,
    view: BoundaryView,
    inputs: np.ndarray,
    targets: np.ndarray,
    small: bool = False,
    offset: float = 0.0,
) -> matplotlib.image.AxesImage:
    """The plane coloured by output, the 0.5 contour, hidden units' lines and the table's rows.

    Args:
        small: a panel of many: no axis, labels or legend entries, just a frame.
        offset: drawn shifted right by this much, so several planes can share one axes.
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
    for target, marker in ((1, "o"), (0, "s")):
        rows = targets.ravel() == target
        axes.scatter(
            inputs[rows, 0] + offset,
            inputs[rows, 1],
            marker=marker,
            s=30 if small else 90,
            c=["#2d5f9a" if target else "#e08214"],
            edgecolors="black",
            linewidths=1,
            label=None if small else f"target {target}",
            zorder=3,
        )
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


def line_in_plane(w1: float, w2: float, bias: float) -> np.ndarray | None:
    """The ends `[[x1, x2], [x1, x2]]` of the line `w1 x1 + w2 x2 + bias = 0` inside the plane."""
    low, high = PLANE
    points = []
    for edge in (low, high):
        if w2 != 0:
            points.append((edge, -(w1 * edge + bias) / w2))
        if w1 != 0:
            points.append((-(w2 * edge + bias) / w1, edge))
    inside = [
        point
        for point in points
        if low - 1e-9 <= point[0] <= high + 1e-9 and low - 1e-9 <= point[1] <= high + 1e-9
    ]
    if len(inside) < 2:
        return None
    inside = np.array(inside)
    # Of the crossings (a corner gives two), the two farthest apart.
    distances = np.linalg.norm(inside[:, None] - inside[None], axis=-1)
    first, second = np.unravel_index(np.argmax(distances), distances.shape)
    return inside[[first, second]] if distances[first, second] > 0 else None


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
        axes.text(
            index * step + low + span / 2,
            high + 0.04 * span,
            f"epoch {epoch}",
            ha="center",
            va="bottom",
            fontsize="small",
        )
    axes.set_xlim(low - 0.01, high + (len(views) - 1) * step + 0.01)
    axes.set_ylim(low - 0.01, high + 0.01)
    axes.set_axis_off()
    colour_axes = figure.add_axes((1 - 0.75 / width, 0.1, 0.12 / width, 0.62))
    figure.colorbar(image, cax=colour_axes, label="output")
    figure.suptitle(f"{title}: how the boundary formed (dashed: hidden units)", fontsize="medium")
    return figure


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
) -> Figure:
    """One small decision-boundary panel per job, a row per group of swept values."""
    columns = max(len(panels) for panels in groups.values())
    figure = new_figure(max(1.75 * columns + 0.4, 4.5), 1.95 * len(groups) + 0.9)
    grid = figure.subplots(len(groups), columns, squeeze=False)
    for row, (group, panels) in zip(grid, groups.items(), strict=True):
        for column, axes in enumerate(row):
            if column >= len(panels):
                axes.set_axis_off()
                continue
            panel = panels[column]
            draw_boundary(axes, panel.view, inputs, targets, small=True)
            axes.set_xlim(PLANE[0] - 0.01, PLANE[1] + 0.01)
            axes.set_ylim(PLANE[0] - 0.01, PLANE[1] + 0.01)
            axes.set_axis_off()
            outcome = "solved" if panel.solved else "not solved"
            axes.set_title(
                f"{panel.title}\n{outcome}",
                fontsize=7,
                color=SOLVED_COLOUR if panel.solved else UNSOLVED_COLOUR,
            )
        if group:
            row[0].text(
                -0.06,
                0.5,
                group,
                transform=row[0].transAxes,
                rotation=90,
                ha="right",
                va="center",
                fontsize=8,
            )
    figure.suptitle(title, fontsize="medium")
    if footnote:
        figure.text(0.5, 0.01, footnote, ha="center", va="bottom", fontsize=8)
    figure.subplots_adjust(
        left=0.06,
        right=0.98,
        top=1 - 0.6 / figure.get_figheight(),
        bottom=0.35 / figure.get_figheight(),
        hspace=0.45,
        wspace=0.1,
    )
    return figure
