"""Wilson's 95% score interval of a success rate, against known values, and where a sweep shows
it: each cell's console line, metrics, answer table, CSV columns and success-rate figure."""

import math

import numpy as np
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer

from gatelab.sweeps.intervals import Z_95, Interval, wilson_interval
from gatelab.views import sweep_figures
from tests.helpers import cells_of, run_train, runs_of, summary_rows


@pytest.mark.parametrize(
    ("solved", "total", "low", "high"),
    [
        # As scipy.stats.binomtest(solved, total).proportion_ci(method='wilson') gives them.
        (9, 10, 0.5958, 0.9821),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (1945, 2500, 0.7613, 0.7939),
        (84, 100, 0.7558, 0.8990),
        (80, 100, 0.7112, 0.8666),
        (1, 3, 0.0615, 0.7923),
        (0, 1, 0.0, 0.7935),
    ],
)
def test_the_interval_is_wilsons_at_95_percent(solved, total, low, high):
    interval = wilson_interval(solved, total)
    assert interval == Interval(pytest.approx(low, abs=5e-5), pytest.approx(high, abs=5e-5))


def test_the_ends_are_exactly_0_and_1_when_none_or_every_job_solved():
    assert wilson_interval(0, 7).low == 0.0
    assert wilson_interval(7, 7).high == 1.0
    for solved in range(0, 51):
        interval = wilson_interval(solved, 50)
        assert 0.0 <= interval.low <= solved / 50 <= interval.high <= 1.0


def test_it_is_the_normal_quantile_of_a_two_sided_95_percent_and_narrows_with_more_seeds():
    assert math.erf(Z_95 / math.sqrt(2)) == pytest.approx(0.95, abs=1e-15)
    widths = [wilson_interval(n // 2, n).high - wilson_interval(n // 2, n).low for n in (10, 100)]
    # A hundred seeds, ten times as many: about sqrt(10) times narrower.
    assert widths[0] / widths[1] == pytest.approx(math.sqrt(10), rel=0.15)


def test_no_jobs_give_no_interval_and_impossible_counts_are_refused_in_one_line():
    assert wilson_interval(0, 0) is None
    for solved, total in [(3, 2), (-1, 5), (0, -1)]:
        with pytest.raises(ValueError, match=rf"^solved={solved}, total={total}: .*<= total$"):
            wilson_interval(solved, total)


def test_two_intervals_overlap_when_they_share_a_rate_and_print_as_a_range():
    best, runner_up = wilson_interval(84, 100), wilson_interval(80, 100)
    assert best.overlaps(runner_up) and runner_up.overlaps(best)
    assert not wilson_interval(84, 100).overlaps(wilson_interval(40, 100))
    assert not wilson_interval(40, 100).overlaps(wilson_interval(84, 100))
    assert (best.text(), runner_up.text()) == ("0.76-0.90", "0.71-0.87")
    # A narrow interval keeps a third decimal, else both ends would round alike.
    assert wilson_interval(1945, 2500).text() == "0.761-0.794"
    assert wilson_interval(0, 10).text() == "0.00-0.28"


def test_the_success_rate_figure_draws_each_values_interval_as_an_error_bar():
    solved, jobs = [0, 9, 1945], [10, 10, 2500]
    intervals = [wilson_interval(k, n) for k, n in zip(solved, jobs, strict=True)]
    figure = sweep_figures.success_rate_bars(
        ["0.05", "0.5", "1.0"],
        solved,
        jobs,
        "optimizer.learning_rate",
        [(interval.low, interval.high) for interval in intervals],
    )
    (axes,) = figure.axes
    (bars,) = [c for c in axes.containers if isinstance(c, BarContainer)]
    assert [bar.get_height() for bar in bars] == [0.0, 0.9, 1945 / 2500]
    (errors,) = [c for c in axes.containers if isinstance(c, ErrorbarContainer)]
    (segments,) = [line.get_segments() for line in errors.lines[2]]
    ends = [(segment[0][1], segment[1][1]) for segment in segments]
    for (low, high), interval in zip(ends, intervals, strict=True):
        assert (low, high) == pytest.approx((interval.low, interval.high))
    labels = [text.get_text() for text in axes.texts]
    assert labels == ["0/10", "9/10", "1945/2500"]
    assert axes.get_legend().get_texts()[0].get_text() == "95% interval (Wilson)"


def test_the_heatmap_writes_each_squares_interval_under_its_rate():
    rates = np.array([[0.9, np.nan]])
    intervals = np.array([[[0.5958, 0.9821], [np.nan, np.nan]]])
    figure = sweep_figures.success_heatmap(
        ["0.5"], ["0", "0.9"], rates, "lr", "momentum", intervals
    )
    assert [text.get_text() for text in figure.axes[0].texts] == ["0.90\n(0.60-0.98)"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sweeper", "seeds"), [("vectorized", "seed=range(8)"), ("basic", "seed=1,2")]
)
@pytest.mark.usefixtures("tracking_uri")
def test_a_sweeps_cells_carry_their_intervals_on_console_runs_table_csv_and_figure(
    tmp_path, sweeper, seeds
):
    arguments = ["-m", f"hydra/sweeper={sweeper}", seeds, "optimizer.learning_rate=0.1,2.0"]
    result = run_train(tmp_path, *arguments, "trainer.epochs=300", "trainer.print_every=0")
    assert result.returncode == 0, result.stderr[-3000:]
    client, (parent,), _ = runs_of(tmp_path)
    output = result.stdout + result.stderr
    rows = summary_rows(tmp_path)
    note = parent.data.tags["mlflow.note.content"]
    assert "| cell | solved | success rate | 95% CI | median epochs_to_solve |" in note
    cells = cells_of(tmp_path)
    assert sorted(cell.info.run_name for cell in cells) == ["lr=0.1", "lr=2.0"]
    for run in [parent, *cells]:
        metrics = run.data.metrics
        solved, total = int(metrics["solved_jobs"]), int(metrics["jobs"])
        interval = wilson_interval(solved, total)
        assert metrics["success_rate_ci_low"] == round(interval.low, 4)
        assert metrics["success_rate_ci_high"] == round(interval.high, 4)
        shown = (
            f"solved {solved}/{total} jobs ({metrics['success_rate']:g}, 95% CI {interval.text()})"
        )
        if run is parent:  # the sweep-wide line, and the description's first line
            assert f"\n{shown}" in output or f"] {shown}" in output
            assert note.startswith(f"**{shown}")
            continue
        name = run.info.run_name
        assert f"{name}: {shown}" in output
        assert f"| {name} | {solved}/{total} | {solved / total:.2f} | {interval.text()} |" in note
        rate = name.removeprefix("lr=")
        mine = [row for row in rows if row["optimizer.learning_rate"] == rate]
        assert len(mine) == total
        for row in mine:
            assert float(row["cell_success_rate_ci_low"]) == metrics["success_rate_ci_low"]
            assert float(row["cell_success_rate_ci_high"]) == metrics["success_rate_ci_high"]
    artifacts = {artifact.path for artifact in client.list_artifacts(parent.info.run_id)}
    assert "success_rate_by_optimizer.learning_rate.png" in artifacts
