"""Where to see a run: the `mlflow ui` command and the UI's addresses, never with credentials."""

from urllib.parse import quote

import mlflow

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


def runs_url(experiment_id: str, search_filter: str = "", compare: str = "") -> str:
    """A link to the experiment's runs in the model-training view, filtered by `search_filter`.

    Args:
        compare: `CHART` opens the chart view instead of the runs table.
    """
    # The query parameters the MLflow 3 UI reads from its address (`workflowType` picks the
    # model-training view, `searchFilter` fills the search box, `compareRunsMode` the view).
    query = MODEL_TRAINING_VIEW
    if search_filter:
        query += f"&searchFilter={quote(search_filter, safe='')}"
    if compare:
        query += f"&compareRunsMode={compare}"
    return f"{ui_address()}/#/experiments/{experiment_id}/runs?{query}"


def sweep_filter(parent_run_id: str) -> str:
    """The runs-table filter that shows only the children of one sweep."""
    return f'tags.mlflow.parentRunId = "{parent_run_id}"'


def run_url(experiment_id: str, run_id: str) -> str:
    """A link to one run, in the model-training view (a new browser would file it elsewhere)."""
    return f"{ui_address()}/#/experiments/{experiment_id}/runs/{run_id}?{MODEL_TRAINING_VIEW}"
