"""Where to see a run: the `mlflow ui` command and the UI's addresses, never with credentials."""

import json
from urllib.parse import quote

import mlflow
from mlflow.tracking import MlflowClient

from gatelab.redaction import redact

# Where `mlflow ui` listens unless told otherwise.
LOCAL_UI_ADDRESS = "http://127.0.0.1:5000"
# The query that opens the UI's model-training view, not its GenAI one.
MODEL_TRAINING_VIEW = "workflowType=machine_learning"


def ui_command() -> str:
    """How to see the current store: a tracking server's address, or `mlflow ui` on a local one."""
    uri = redact(mlflow.get_tracking_uri())
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    return f"mlflow ui --backend-store-uri {uri}"


def ui_address() -> str:
    """The UI's address: the tracking server's, or that of `mlflow ui` on a local store."""
    uri = redact(mlflow.get_tracking_uri())
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_UI_ADDRESS


def runs_url(experiment_id: str, search_filter: str = "", compare: str = "", view: str = "") -> str:
    """A link to the experiment's runs in the model-training view, filtered by `search_filter`.

    Args:
        compare: `CHART` opens the chart view instead of the runs table.
        view: the key of a view saved by `share_children_view` (instead of `search_filter`).
    """
    # The query parameters the MLflow 3 UI reads from its address (`workflowType` picks the
    # model-training view, `searchFilter` fills the search box, `compareRunsMode` the view,
    # `viewStateShareKey` a view kept in an experiment tag, as its "Share" button makes).
    query = MODEL_TRAINING_VIEW
    if search_filter:
        query += f"&searchFilter={quote(search_filter, safe='')}"
    if view:
        query += f"&{SHARED_VIEW_PARAMETER}={view}"
    if compare:
        query += f"&compareRunsMode={compare}"
    return f"{ui_address()}/#/experiments/{experiment_id}/runs?{query}"


# A view of an experiment's runs page kept in the experiment's tag `<prefix><key>`, opened by
# `?viewStateShareKey=<key>`: MLflow's own "Share" button (MLflow 3.17: `useSharedExperiment
# ViewState`). It holds the search facets and the UI state a new browser would not have.
SHARED_VIEW_PARAMETER = "viewStateShareKey"
SHARED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."
# What every child of a sweep is scored by: its chart comes first, its runs best first.
ANSWER_METRIC = "success_rate"
INTERVAL_METRICS = ("success_rate_ci_low", "success_rate_ci_high")


def children_view(parent_run_id: str, params: list[str], metric: str = ANSWER_METRIC) -> dict:
    """The view of one sweep's children (its cells, or a study's trials) that answers it.

    - Only that sweep's children, sorted by `metric`, best first. Sorted by anything but
      the start time, MLflow 3.17 does not fetch their parent to fold them under it (its
      `shouldFetchParents`): each child is a row and a bar of its own.
    - Every child shown in the charts (MLflow's default shows the first 10 only).
    - First, wide, `success_rate` a bar per child, and against the first swept param (MLflow's
      bars carry no names: the scatter's axis does); then its 95% interval's bounds. In the
      table: those metrics and the swept `params`.
    """
    answer, interval = "gatelab-answer", "gatelab-interval"
    charts = [bar(metric, answer)]
    if params:
        charts.append(
            {
                **chart("SCATTER", f"{params[0]} vs {metric}", answer),
                "xaxis": {"key": params[0], "type": "PARAM"},
                "yaxis": {"key": metric, "type": "METRIC"},
            }
        )
    if metric == ANSWER_METRIC:
        charts += [bar(bound, interval) for bound in INTERVAL_METRICS]
    return {
        "searchFilter": sweep_filter(parent_run_id),
        "orderByKey": f"metrics.`{metric}`",
        "orderByAsc": False,
        "runsHiddenMode": "SHOW_ALL",
        "selectedColumns": [
            *(f"metrics.`{key}`" for key in (metric, *INTERVAL_METRICS)),
            *(f"params.`{param}`" for param in params),
        ],
        "compareRunSections": [
            section(answer, f"Which settings learn: {metric}", height=480),
            section(interval, f"How sure: the 95% interval of {metric}", height=320),
        ],
        "compareRunCharts": charts,
        # The sections in this order (not sorted by name).
        "isAccordionReordered": True,
        "hideEmptyCharts": True,
    }


def section(uuid: str, name: str, height: int) -> dict:
    """A section of the chart view: two charts a row, `height` pixels high."""
    return {
        "uuid": uuid,
        "name": name,
        "display": True,
        "isReordered": False,
        "columns": 2,
        "cardHeight": height,
    }


def chart(kind: str, name: str, section_id: str) -> dict:
    """A chart of the chart view, every run in it (MLflow's default compares 10)."""
    return {
        "uuid": f"gatelab-{name}",
        "type": kind,
        "runsCountToCompare": 1000,
        "metricSectionId": section_id,
        "deleted": False,
        "isGenerated": False,
        "displayName": name,
    }


def bar(metric: str, section_id: str) -> dict:
    """A bar per run: its `metric`, the value written on the bar."""
    return {**chart("BAR", metric, section_id), "metricKey": metric}


def share_children_view(
    client: MlflowClient,
    experiment_id: str,
    parent_run_id: str,
    params: list[str],
    metric: str = ANSWER_METRIC,
) -> str:
    """Keep `children_view` in the experiment, keyed by the parent's run id; return the link
    that opens it, in the chart view.

    Args:
        metric: what the children are scored by: `success_rate` (cells, trials), or `solved`
            (the jobs of a sweep without cells, its parent's own children).
    """
    view = json.dumps(children_view(parent_run_id, params, metric), separators=(",", ":"))
    client.set_experiment_tag(experiment_id, f"{SHARED_VIEW_TAG_PREFIX}{parent_run_id}", view)
    return children_url(experiment_id, parent_run_id)


def children_url(experiment_id: str, parent_run_id: str) -> str:
    """The link to a sweep's children kept by `share_children_view`."""
    return runs_url(experiment_id, view=parent_run_id, compare="CHART")


def sweep_filter(parent_run_id: str) -> str:
    """The runs-table filter that shows only the children of one sweep."""
    return f'tags.mlflow.parentRunId = "{parent_run_id}"'


def run_url(experiment_id: str, run_id: str) -> str:
    """A link to one run, in the model-training view (a new browser would file it elsewhere)."""
    return f"{ui_address()}/#/experiments/{experiment_id}/runs/{run_id}?{MODEL_TRAINING_VIEW}"
