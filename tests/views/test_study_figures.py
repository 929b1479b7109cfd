"""An Optuna study's figures: trial numbers are whole numbers, and the history shows each
trial's 95% interval around its success rate."""

import matplotlib
import numpy as np
import optuna
from matplotlib.container import ErrorbarContainer
from optuna.distributions import FloatDistribution

from gatelab.views.study_figures import TRIAL_LABEL, close, study_figures

RATE = FloatDistribution(0.01, 5, log=True)
MOMENTUM = FloatDistribution(0, 0.9)


def study_of(trials: int) -> optuna.Study:
    """A study of `trials` complete trials, each scored at (i % 7) / 10."""
    study = optuna.create_study(direction="maximize")
    for number in range(trials):
        study.add_trial(
            optuna.trial.create_trial(
                params={
                    "optimizer.learning_rate": 0.01 * 1.3**number,
                    "optimizer.momentum": 0.04 * number,
                },
                distributions={"optimizer.learning_rate": RATE, "optimizer.momentum": MOMENTUM},
                value=(number % 7) / 10,
            )
        )
    return study


def trial_axes(figure):
    """Each axis labelled as a trial number: the history's x axis, the slice's colour bar."""
    return [
        axis
        for axes in figure.axes
        for axis in (axes.xaxis, axes.yaxis)
        if axis.get_label_text() == TRIAL_LABEL
    ]


def test_trial_numbers_are_ticked_at_whole_numbers_only():
    figures = study_figures(study_of(20), ["success_rate"])
    axes = {name: trial_axes(figures[name]) for name in ("optimization_history.png", "slice.png")}
    assert all(len(found) == 1 for found in axes.values())
    for (axis,) in axes.values():
        axis.figure.canvas.draw()
        ticks = [tick for tick in axis.get_ticklocs() if 0 <= tick <= 19]
        # Optuna's own: 0, 2.5, 5, ..., 17.5.
        assert len(ticks) >= 4 and all(tick == int(tick) for tick in ticks)
    for figure in figures.values():
        close(figure)


def test_the_history_draws_each_trials_interval_around_its_point():
    study = study_of(12)
    intervals = {
        number: ((number % 7) / 10 - 0.05, (number % 7) / 10 + 0.1) for number in range(12)
    }
    intervals.pop(3)  # a trial with no seed recorded has no interval
    figures = study_figures(study, ["success_rate"], intervals)
    (history,) = figures["optimization_history.png"].axes
    (bars,) = [item for item in history.containers if isinstance(item, ErrorbarContainer)]
    (segments,) = bars.lines[2]
    drawn = {round(x): (low, high) for (x, low), (_, high) in segments.get_segments()}
    assert drawn.keys() == intervals.keys()
    for number, (low, high) in intervals.items():
        assert np.allclose(drawn[number], (low, high))
    assert "95% interval" in [text.get_text() for text in history.get_legend().get_texts()]
    # Without intervals (another objective), no bars.
    plain = study_figures(study, ["success_rate"])["optimization_history.png"].axes[0]
    assert not [item for item in plain.containers if isinstance(item, ErrorbarContainer)]
    for figure in [*figures.values(), plain.figure]:
        close(figure)


def test_the_figures_drawn_after_a_studys_keep_matplotlibs_style():
    # Optuna's plots apply pyplot's ggplot style (grey axes, a grid) for the whole process.
    for figure in study_figures(study_of(5), ["success_rate"]).values():
        close(figure)
    style = ["axes.facecolor", "axes.edgecolor", "axes.grid", "axes.prop_cycle", "font.size"]
    assert {key: matplotlib.rcParams[key] for key in style} == {
        key: matplotlib.rcParamsDefault[key] for key in style
    }
