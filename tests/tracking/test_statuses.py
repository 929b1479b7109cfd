from mlflow.entities import RunStatus

from gatelab.tracking import statuses


def test_the_statuses_are_mlflows_own_names():
    for name in ("RUNNING", "FINISHED", "FAILED", "KILLED"):
        assert getattr(statuses, name) == RunStatus.to_string(getattr(RunStatus, name))
