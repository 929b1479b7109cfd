"""The view a sweep's printed link opens: its children unfolded, all charted, best first."""

import json

import pytest

from gatelab.tracking.links import children_view
from tests.helpers import QUICK, runs_of
from tests.helpers import run_train as train


def test_the_view_of_cells_charts_their_rate_its_interval_and_the_swept_value():
    view = children_view("abc", ["optimizer.learning_rate"])
    assert view["searchFilter"] == 'tags.mlflow.parentRunId = "abc"'
    charts = [(chart["type"], chart.get("metricKey")) for chart in view["compareRunCharts"]]
    assert charts == [
        ("BAR", "success_rate"),
        ("SCATTER", None),
        ("BAR", "success_rate_ci_low"),
        ("BAR", "success_rate_ci_high"),
    ]
    scatter = view["compareRunCharts"][1]
    assert scatter["xaxis"] == {"key": "optimizer.learning_rate", "type": "PARAM"}
    # Every chart compares every run, not MLflow's first 10.
    assert {chart["runsCountToCompare"] for chart in view["compareRunCharts"]} == {1000}
    assert "params.`optimizer.learning_rate`" in view["selectedColumns"]


def test_the_view_of_jobs_alone_is_scored_by_solved():
    view = children_view("abc", [], metric="solved")
    assert view["orderByKey"] == "metrics.`solved`"
    assert [chart["metricKey"] for chart in view["compareRunCharts"]] == ["solved"]


@pytest.mark.slow
def test_a_sweep_of_seeds_alone_links_to_its_jobs_scored_by_solved(tmp_path):
    result = train(tmp_path, "-m", "seed=1,2", *QUICK)
    assert result.returncode == 0, result.stderr
    client, (parent,), jobs = runs_of(tmp_path)
    assert len(jobs) == 2
    tags = client.get_experiment(parent.info.experiment_id).tags
    view = json.loads(tags[f"mlflow.sharedViewState.{parent.info.run_id}"])
    assert view["orderByKey"] == "metrics.`solved`"
    assert "then open this sweep's jobs at" in result.stdout + result.stderr
