"""Time one sweep child's MLflow writes, per logging choice, in MLflow's own SQLite store and in the
store as gatelab prepares it (write-ahead log, `synchronous=NORMAL`).

    python benchmarks/bench_child_logging.py               # 200 children per case
    python benchmarks/bench_child_logging.py --children 50

A child is written as the vectorized sweeper writes it (`gatelab.vectorized.ChildLogger`): one
`create_run` with its tags, one `log_batch` of its params, final metrics, `loss` points and
weights/predictions tags, one `set_terminated`. The choices are the `loss` metric's points
(`tracking.max_loss_points`: 0, the sweeper's 50, 1000) and, as a per-job sweep does, the weights
and predictions as two JSON artifacts instead of tags. Each case writes `--children` runs into a
fresh store in a temporary folder, the two stores in alternating batches of 20 (so a change of
the machine's load touches both alike); the store created by MLflow alone is the baseline, and
the ratio is printed.
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from gatelab import tracking

PARAMS = 20
TAGS = 10
WEIGHTS = {"dense/kernel": [[0.5, -0.5], [0.25, 1.5]], "dense/bias": [0.1, -0.1]}
PREDICTIONS = {"inputs": [[0, 0], [0, 1], [1, 0], [1, 1]], "outputs": [0.1, 0.9, 0.9, 0.1]}
BATCH = 20
CHOICES = {
    "no loss metric": (0, False),
    "50-point loss (vectorized default)": (50, False),
    "50-point loss + 2 JSON artifacts": (50, True),
    "1000-point loss": (1000, False),
}


def write_children(
    client: MlflowClient, experiment_id: str, count: int, points: int, artifacts: bool
) -> float:
    """Seconds per child for `count` children written with the sweeper's three calls."""
    params = [Param(f"param.{number}", str(number)) for number in range(PARAMS)]
    tags = {f"tag.{number}": "value" for number in range(TAGS)}
    started = time.perf_counter()
    for number in range(count):
        run_id = client.create_run(experiment_id, run_name=f"seed={number}", tags=tags).info.run_id
        now = int(time.time() * 1000)
        metrics = [Metric("loss", float(np.exp(-step / 100)), now, step) for step in range(points)]
        metrics += [Metric(key, 1.0, now, 0) for key in ("accuracy", "solved", "epochs_to_solve")]
        written = (
            []
            if artifacts
            else [
                RunTag("weights", json.dumps(WEIGHTS)),
                RunTag("predictions", json.dumps(PREDICTIONS)),
            ]
        )
        client.log_batch(run_id, metrics=metrics, params=params, tags=written)
        if artifacts:
            client.log_dict(run_id, WEIGHTS, "weights.json")
            client.log_dict(run_id, PREDICTIONS, "predictions.json")
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    return (time.perf_counter() - started) / count


def store(folder: Path, prepared: bool) -> tuple[MlflowClient, str]:
    """A fresh store in `folder`: created by MLflow alone, or as gatelab's runs prepare it."""
    folder.mkdir()
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    if prepared:
        experiment_id = tracking.configure(uri, "bench")
    else:
        mlflow.set_tracking_uri(uri)
        experiment_id = MlflowClient().create_experiment("bench")
    return MlflowClient(uri), experiment_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=200, help="runs per case (default 200)")
    arguments = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {arguments.children} children per case")
    print(f"{'choice':<36} {'MLflow store':>14} {'gatelab store':>14} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as directory:
        # The stores' artifacts (`mlartifacts/`) go beside them.
        os.chdir(directory)
        for number, (choice, (points, artifacts)) in enumerate(CHOICES.items()):
            stores = {
                prepared: store(Path(directory) / f"{number}-{prepared}", prepared)
                for prepared in (False, True)
            }
            for client, experiment_id in stores.values():
                write_children(client, experiment_id, 3, points, artifacts)  # warm-up
            # In alternating batches: a change of the machine's load touches both stores alike.
            seconds = {prepared: 0.0 for prepared in stores}
            batches = max(1, arguments.children // BATCH)
            for _ in range(batches):
                for prepared, (client, experiment_id) in stores.items():
                    seconds[prepared] += (
                        write_children(client, experiment_id, BATCH, points, artifacts) / batches
                    )
            print(
                f"{choice:<36} {1000 * seconds[False]:>11.1f} ms {1000 * seconds[True]:>11.1f} ms"
                f" {seconds[False] / seconds[True]:>6.2f}x"
            )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
