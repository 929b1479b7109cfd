"""An Optuna study's figures: Optuna's own matplotlib plots, cropped and labelled for a run page."""

import warnings

import matplotlib
import numpy as np
import optuna
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter
from optuna.trial import TrialState

# Cropped to what is drawn: Optuna's long parameter names run past the figure's left edge.
FIGURE_PNG = {"bbox_inches": "tight"}
# What Optuna labels a trial number with: the history's x axis, the slice's colour bar.
TRIAL_LABEL = "Trial"


def study_figures(
    study: optuna.Study,
    objective: list[str],
    intervals: dict[int, tuple[float, float]] | None = None,
) -> dict[str, Figure]:
    """Optuna's figures of the study (history, importances, contour, slice, Pareto front), by
    artifact name; close each with `close` once saved.

    Args:
        intervals: the 95% interval (low, high) of the first objective by trial number, drawn
            as an error bar on each trial's point of the history (a trial a column: the slice
            plot's points, crowded, would hide behind their bars).
    """
    # Optuna draws with pyplot: off screen, whatever display the machine has.
    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as optuna_figures

    found: dict[str, Figure] = {}
    single = len(objective) == 1
    target = None if single else (lambda trial: trial.values[0])
    target_name = objective[0]
    keys = list(study.best_trials[0].params) if study.best_trials else []
    # Optuna's plots set pyplot's style (ggplot) for the whole process: the figures drawn
    # after them (a sweep's, a run's) keep the defaults.
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        history = optuna_figures.plot_optimization_history(
            study, target=target, target_name=target_name
        )
        if intervals:
            _draw_intervals(history, study, intervals)
        found["optimization_history.png"] = _figure_of(history)
        if len(keys) >= 1 and _varied(study, keys):
            found["param_importances.png"] = _figure_of(
                optuna_figures.plot_param_importances(study, target=target, target_name=target_name)
            )
        if len(keys) == 2:
            found["contour.png"] = _figure_of(
                optuna_figures.plot_contour(study, target=target, target_name=target_name)
            )
        found["slice.png"] = _figure_of(
            optuna_figures.plot_slice(study, target=target, target_name=target_name)
        )
        if not single:
            found["pareto_front.png"] = _figure_of(
                optuna_figures.plot_pareto_front(study, target_names=objective)
            )
    return found


def close(figure: Figure) -> None:
    """Free a figure Optuna drew through pyplot."""
    import matplotlib.pyplot as plt

    plt.close(figure)


def _varied(study: optuna.Study, keys: list[str]) -> bool:
    """Whether the complete trials' values and objective vary: importances need both."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    objective = {trial.values[0] for trial in complete}
    return len(objective) > 1 and all(
        len({trial.params.get(key) for trial in complete}) > 1 for key in keys
    )


def _draw_intervals(
    axes: Axes, study: optuna.Study, intervals: dict[int, tuple[float, float]]
) -> None:
    """Each complete trial's 95% interval as a grey error bar behind its point in the history
    (trial number, first objective)."""
    points = [
        (trial.number, trial.values[0], *intervals[trial.number])
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if trial.number in intervals
    ]
    if not points:
        return
    x, y, low, high = (np.array(column, dtype=float) for column in zip(*points, strict=True))
    axes.errorbar(
        x,
        y,
        yerr=[np.maximum(y - low, 0), np.maximum(high - y, 0)],
        fmt="none",
        ecolor="#7f7f7f",
        elinewidth=1,
        # Caps would run into one another past a few dozen trials.
        capsize=3 if len(points) <= 40 else 0,
        zorder=0.9,
        label="95% interval",
    )
    if axes.get_legend() is not None:
        axes.legend(bbox_to_anchor=(1.05, 1.0), loc="upper left")


def _figure_of(axes: object) -> Figure:
    """The figure of Optuna's axes, a log axis labelled at its decades only (its minor labels,
    `4x10^-1`, `6x10^-1`, overlap one another on a range of a decade or two) and a trial number
    at whole numbers only (not trial 2.5)."""
    figure = np.ravel(axes)[0].figure
    for each in figure.axes:
        for axis in (each.xaxis, each.yaxis):
            if axis.get_scale() == "log":
                axis.set_minor_formatter(NullFormatter())
            if axis.get_label_text() == TRIAL_LABEL:
                axis.set_major_locator(MaxNLocator(integer=True))
    return figure
