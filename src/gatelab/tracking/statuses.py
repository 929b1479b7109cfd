"""A run's status: MLflow's four names, spelled here once for all of gatelab.

Plain strings, so that pure modules (`sweeps.summary`) use them without importing MLflow;
`tests/tracking/test_statuses.py` holds them equal to `mlflow.entities.RunStatus`'s names.
"""

RUNNING = "RUNNING"
FINISHED = "FINISHED"
FAILED = "FAILED"
KILLED = "KILLED"
