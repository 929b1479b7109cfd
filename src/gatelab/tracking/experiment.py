"""The experiment every run of a command goes to, created once with the kind the UI needs."""

from collections.abc import Callable
from typing import Any, TypeVar

import mlflow
from mlflow.entities import LifecycleStage, Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from gatelab.errors import StoreError
from gatelab.tracking import store

# The experiment tag from which `mlflow ui` (3.x) chooses its view; without it the UI guesses,
# and may open a GenAI overview (traces, token usage) instead of the runs table.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
# What MLflow answers the loser of two processes creating the same record: the record exists
# already, or (a SQL store's unique constraint) the write was a bad request.
CONFLICT_CODES = ("RESOURCE_ALREADY_EXISTS", "BAD_REQUEST")

T = TypeVar("T")


def configure(uri: str | None, experiment: str, experiment_id: str | None = None) -> str:
    """Point MLflow at `uri` (None keeps MLflow's default) and return the experiment id.

    Args:
        experiment: the experiment's name, created if need be.
        experiment_id: an experiment that exists already (a sweep's), used instead.
    """
    if uri:
        mlflow.set_tracking_uri(uri)
    if experiment_id is not None:
        with store.prepared(mlflow.get_tracking_uri()):
            mlflow.set_experiment(experiment_id=experiment_id)
        return experiment_id
    # Under the store's lock: parallel workers and sweeps race at creating both.
    with store.prepared(mlflow.get_tracking_uri()):
        # Connected once the store is whole and in its journal mode.
        client = MlflowClient()
        found = client.get_experiment_by_name(experiment)
        if found is None:
            try:
                # Created with its kind: no later tag write for a concurrent creator to race.
                client.create_experiment(
                    experiment, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND}
                )
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            found = client.get_experiment_by_name(experiment)
        if found.lifecycle_stage != LifecycleStage.ACTIVE:
            raise StoreError(
                f"tracking.experiment={experiment!r} is deleted; restore it "
                f"(mlflow experiments restore --experiment-id {found.experiment_id}) "
                "or choose another name"
            )
        kind = found.tags.get(EXPERIMENT_KIND_TAG, "")
        # A kind the user (or the UI's kind selector) chose stays; a missing or guessed one not.
        if not kind or kind.endswith("_inferred"):
            retried_on_conflict(client.set_experiment_tag)(
                found.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND
            )
    # The experiment `mlflow.start_run` uses.
    mlflow.set_experiment(experiment_id=found.experiment_id)
    return found.experiment_id


def retried_on_conflict(write: Callable[..., T]) -> Callable[..., T]:
    """`write`, tried once more if it loses a race: processes started together create the same
    record (an experiment tag, a dataset), and on a server the loser gets a conflict."""

    def write_again_if_raced(*args: Any, **kwargs: Any) -> T:
        try:
            return write(*args, **kwargs)
        except MlflowException as error:
            if error.error_code not in CONFLICT_CODES:
                raise
            # By now the winner's record exists, and writing it again is an update.
            return write(*args, **kwargs)

    return write_again_if_raced


def every_run(client: MlflowClient, experiment_id: str, filter_string: str = "") -> list[Run]:
    """Every active run of the experiment that `filter_string` selects, page after page (a
    store answers at most 50,000 at a time)."""
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string=filter_string, max_results=50000, page_token=token
        )
        runs += page
        token = page.token
        if not token:
            return runs
