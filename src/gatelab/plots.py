"""The chapter's figures, drawn off-screen.

Figures are made as `matplotlib.figure.Figure`, not through pyplot: no display is needed, and
nothing keeps them (pyplot's registry would until closed, collecting garbage on each close).
"""

import matplotlib
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure


def loss_curve(loss: np.ndarray, title: str) -> Figure:
    """Loss per epoch, as the chapter plots `history.history['loss']`."""
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    axes.plot(np.arange(1, len(loss) + 1), loss)
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    # Fixed margins: tight_layout measures every label and costs more than the plot itself.
    figure.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.92)
    return figure


def success_rate_bars(values: list[str], rates: list[float], parameter: str) -> Figure:
    """Fraction of jobs reaching 100% accuracy for each value of a swept parameter."""
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    axes.bar(range(len(values)), rates)
    axes.set_xticks(range(len(values)), values, rotation=45 if len(values) > 6 else 0)
    axes.set_ylim(0, 1)
    axes.set_xlabel(parameter)
    axes.set_ylabel("success rate (accuracy 1.0)")
    axes.set_title(f"success rate by {parameter}")
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
    figure = Figure(figsize=(1.2 * len(columns) + 3, 0.6 * len(rows) + 2.5))
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
    """Every job's loss curve on one axes, one colour per value of `colour_parameter`."""
    figure = Figure(figsize=(7, 4.5))
    axes = figure.subplots()
    distinct = sorted(set(colour_values or [""]), key=numeric_first)
    colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(distinct)))
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
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.set_title(f"loss curves of {len(losses)} jobs")
    if colour_parameter:
        axes.legend(fontsize="small", loc="upper right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def finite_points(loss: np.ndarray) -> np.ndarray:
    """(epoch, loss) rows of a curve, without a diverged run's inf or NaN."""
    points = np.column_stack([np.arange(1, len(loss) + 1), loss])
    return points[np.isfinite(loss)]


def numeric_first(value: str) -> tuple:
    """Sort key for swept values: numbers by value (0.05 before 0.1), then the rest by name."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)
