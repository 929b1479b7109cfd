"""A sweep's figures: success rates, epochs to solve and loss curves (its gallery of boundaries:
`gallery`)."""

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from gatelab.views.colours import sequence_colours
from gatelab.views.run_figures import new_figure


def success_rate_bars(
    values: list[str],
    solved: list[int],
    jobs: list[int],
    parameter: str,
    intervals: list[tuple[float, float]] | None = None,
) -> Figure:
    """Fraction of jobs reaching 100% accuracy for each value of a swept parameter, as k/n,
    with its 95% interval as an error bar.

    Args:
        intervals: each value's (low, high) 95% interval of its rate; no error bars if None.
    """
    figure = new_figure(max(6.0, 0.9 * len(values) + 1.5), 4.2)
    axes = figure.subplots()
    rates = [k / n if n else 0.0 for k, n in zip(solved, jobs, strict=True)]
    positions = np.arange(len(values))
    axes.bar(positions, rates, color="#6baed6", edgecolor="#2171b5")
    tops = rates
    if intervals is not None:
        lows, highs = (np.array(bound, dtype=float) for bound in zip(*intervals, strict=True))
        below, above = np.array(rates) - lows, highs - np.array(rates)
        axes.errorbar(
            positions,
            rates,
            yerr=[below, above],
            fmt="none",
            ecolor="black",
            elinewidth=1.4,
            capsize=6,
            label="95% interval (Wilson)",
        )
        tops = list(highs)
        axes.legend(loc="upper left", fontsize="small", frameon=False)
    for position, top, k, n in zip(positions, tops, solved, jobs, strict=True):
        axes.text(position, top + 0.02, f"{k}/{n}", ha="center", va="bottom", fontsize=9)
    axes.set_xticks(positions, values, rotation=45 if len(values) > 6 else 0)
    axes.set_ylim(0, 1.18)
    axes.set_yticks(np.linspace(0, 1, 6))
    axes.grid(alpha=0.3, axis="y")
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
    intervals: np.ndarray | None = None,
) -> Figure:
    """Success rate for every pair of values of two swept parameters.

    Args:
        intervals: each pair's 95% interval, (rows, columns, 2) lows and highs; written under
            its rate if given.
    """
    figure = new_figure(1.3 * len(columns) + 3, 0.7 * len(rows) + 2.5)
    axes = figure.subplots()
    image = axes.imshow(rates, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(columns)), columns, rotation=45 if len(columns) > 6 else 0)
    axes.set_yticks(range(len(rows)), rows)
    axes.set_xlabel(column_parameter)
    axes.set_ylabel(row_parameter)
    for (i, j), rate in np.ndenumerate(rates):
        if np.isfinite(rate):
            text = f"{rate:.2f}"
            if intervals is not None and np.all(np.isfinite(intervals[i, j])):
                text += f"\n({intervals[i, j, 0]:.2f}-{intervals[i, j, 1]:.2f})"
            axes.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=9,
                color="white" if rate < 0.5 else "black",
            )
    figure.colorbar(image, ax=axes, label="success rate")
    title = "success rate" + (" (95% interval)" if intervals is not None else "")
    axes.set_title(title)
    figure.tight_layout()
    return figure


def overlaid_loss_curves(
    losses: list[np.ndarray],
    colour_values: list[str] | None,
    colour_parameter: str | None,
    distinct: list[str] | None = None,
) -> Figure:
    """Every job's loss curve on one log-scale axes, one colour per value of `colour_parameter`.

    Args:
        distinct: the values of `colour_values` in legend order; sorted as text if None.
    """
    figure = new_figure(7, 4.5)
    axes = figure.subplots()
    if distinct is None:
        distinct = sorted(set(colour_values or [""]))
    # In the values' order, as their cells' runs are coloured in the UI (`views.colours`).
    colour_of = dict(zip(distinct, sequence_colours(len(distinct)), strict=True))
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


def loss_bands(
    curves: dict[str, list[np.ndarray]], title: str, colours: list[str] | None = None
) -> Figure:
    """Per group (a cell), the median loss per epoch and the band between its quartiles.

    Hundreds of overlaid curves are a solid mass; a band says how the group's runs went. A run
    that stopped early (diverged) counts only over the epochs it ran.

    Args:
        colours: each group's colour; None: `sequence_colours` in the groups' order, as the
            cells' runs are coloured.
    """
    figure = new_figure(7, 4.5)
    axes = figure.subplots()
    colours = colours or sequence_colours(len(curves))
    for colour, (label, group) in zip(colours, curves.items(), strict=True):
        group = [curve for curve in group if len(curve)]
        if not group:
            continue
        length = max(len(curve) for curve in group)
        stacked = np.full((len(group), length), np.nan)
        for index, curve in enumerate(group):
            stacked[index, : len(curve)] = np.where(np.isfinite(curve), curve, np.nan)
        epochs = np.arange(1, length + 1)
        low, median, high = nan_percentiles(stacked, [25, 50, 75])
        axes.fill_between(epochs, low, high, color=colour, alpha=0.25, linewidth=0)
        axes.plot(epochs, median, color=colour, label=f"{label} (median of {len(group)})")
    axes.set_yscale("log")
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss (log scale): median, quartile band")
    axes.set_title(title)
    if axes.get_legend_handles_labels()[1]:  # not for groups that all had no curve
        axes.legend(fontsize="small", loc="upper right")
    axes.grid(alpha=0.3)
    # Fixed margins: tight_layout's measuring costs more than the plot (one a cell of a grid).
    figure.subplots_adjust(left=0.11, right=0.97, bottom=0.11, top=0.92)
    return figure


def nan_percentiles(stacked: np.ndarray, percentiles: list[float]) -> np.ndarray:
    """`np.nanpercentile(stacked, percentiles, axis=0)` (linear interpolation), NaN where a
    column has no number, without the warning and in one sort: numpy's own computes column by
    column, seconds for a cell of 1,000 curves of 2,000 epochs."""
    ordered = np.sort(stacked, axis=0)  # NaNs last
    counts = np.sum(~np.isnan(stacked), axis=0)
    columns = np.arange(stacked.shape[1])
    result = np.full((len(percentiles), stacked.shape[1]), np.nan)
    present = counts > 0
    for row, percentile in enumerate(percentiles):
        position = (np.maximum(counts, 1) - 1) * percentile / 100
        below = np.floor(position).astype(int)
        above = np.minimum(below + 1, np.maximum(counts, 1) - 1)
        fraction = position - below
        values = ordered[below, columns] * (1 - fraction) + ordered[above, columns] * fraction
        # An exact position (fraction 0) takes its value alone: an infinite neighbour stays out.
        values = np.where(fraction == 0, ordered[below, columns], values)
        result[row] = np.where(present, values, np.nan)
    return result
