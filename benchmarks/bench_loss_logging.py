"""Time logging the largest run's loss history, bounded as runs do, against every epoch as a metric.

    python benchmarks/bench_loss_logging.py                        # 2.5 million epochs
    python benchmarks/bench_loss_logging.py --baseline-epochs 20000

The largest run allowed (`trainer.epochs=2500000` on a 4-row truth table) once logged all its
epochs as points of metric `loss`: minutes of writing and a 600 MB SQLite store. A run now logs at
most `tracking.max_loss_points` (1000) points and every epoch in the artifact `loss.csv`. Both
are timed here in one process against fresh SQLite stores in a temporary folder, on a made-up
loss curve (nothing is trained). The bounded logging is a single run's own: its record
(`gatelab.tracking.records.trained`) logged by `gatelab.tracking.run.log_results`, which writes
its metric points, `loss.csv`, `weights.json`, `predictions.json` and the model summary (no
Keras model or figures). The baseline is the same record with every epoch a point of `loss`,
written as `log_results` writes its points (one `MlflowClient.log_batch`), for
`--baseline-epochs` epochs, and scaled to the full run (its cost is linear in points: one row
each), so the script finishes in seconds. Expect the bounded logging to take a few seconds, most
of it writing the 49 MB CSV, and the baseline to be 50-200x slower.
"""

import argparse
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from gatelab.data import truth_table
from gatelab.history import History
from gatelab.tracking import records
from gatelab.tracking.run import log_results

MAX_LOSS_POINTS = 1000
DATASET = truth_table("xor", 2)
# A solved run's outputs.
OUTPUTS = 0.8 * DATASET.targets + 0.1
# The chapter's 2-2-1 MLP: each layer's weights' names and shapes (its values do not matter here).
LAYERS = {"hidden_1": {"kernel": (2, 2), "bias": (2,)}, "output": {"kernel": (2, 1), "bias": (1,)}}


def record(loss: np.ndarray, max_loss_points: int) -> records.RunRecord:
    """The record of a single run that trained `len(loss)` epochs, as the pipeline builds it."""
    return records.trained(
        records.Job(),
        name="bench",
        params={"trainer.epochs": str(len(loss))},
        user_tags={},
        history=History(loss=loss, solved=np.zeros(len(loss), dtype=bool)),
        outputs=OUTPUTS,
        inputs=DATASET.inputs,
        targets=DATASET.targets,
        layers=[(layer, list(weights)) for layer, weights in LAYERS.items()],
        weights=[np.zeros(shape) for weights in LAYERS.values() for shape in weights.values()],
        epochs=len(loss),
        max_loss_points=max_loss_points,
        dataset="xor",
    )


def timed_run(store: Path, log) -> tuple[float, int]:
    """Seconds `log(run_id)` takes in a fresh run of a fresh store, and the store's bytes."""
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    artifacts = (store / "artifacts").as_uri()
    experiment_id = mlflow.create_experiment("bench", artifact_location=artifacts)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        start = time.perf_counter()
        log(run.info.run_id)
        seconds = time.perf_counter() - start
    size = sum(path.stat().st_size for path in store.rglob("*") if path.is_file())
    return seconds, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2_500_000)
    parser.add_argument("--baseline-epochs", type=int, default=50_000)
    args = parser.parse_args()
    if not 1 <= args.baseline_epochs <= args.epochs:
        parser.error(
            f"--baseline-epochs must be between 1 and --epochs ({args.epochs}), "
            f"got {args.baseline_epochs}"
        )
    rng = np.random.default_rng(0)
    loss = rng.random(args.epochs, dtype=np.float32)

    with tempfile.TemporaryDirectory() as folder:
        bounded_store = Path(folder) / "bounded"
        bounded_store.mkdir()

        def log_bounded(run_id: str) -> None:
            log_results(
                record(loss, MAX_LOSS_POINTS),
                None,
                DATASET,
                outputs=OUTPUTS,
                loss=loss,
                loss_file=None,
                figures={},
                arrays={},
                summary="",
                config_dir=None,
            )

        bounded, bounded_size = timed_run(bounded_store, log_bounded)

        baseline_store = Path(folder) / "baseline"
        baseline_store.mkdir()
        sample = loss[: args.baseline_epochs]

        def log_every_epoch(run_id: str) -> None:
            every_epoch = record(sample, max_loss_points=len(sample))
            MlflowClient().log_batch(run_id, metrics=every_epoch.metrics())

        baseline, baseline_size = timed_run(baseline_store, log_every_epoch)

    scale = args.epochs / args.baseline_epochs
    print(f"loss history of {args.epochs:,} epochs")
    print(
        f"bounded (log_results: {MAX_LOSS_POINTS} points + loss.csv): {bounded:8.2f} s, "
        f"store and artifacts {bounded_size / 1e6:7.1f} MB"
    )
    print(
        f"every epoch a point, {args.baseline_epochs:,} measured: {baseline:8.2f} s, "
        f"{baseline_size / 1e6:7.1f} MB; scaled to {args.epochs:,}: "
        f"{baseline * scale:8.1f} s, {baseline_size * scale / 1e6:7.1f} MB"
    )
    print(f"ratio (scaled baseline / bounded): {baseline * scale / bounded:.0f}x")


if __name__ == "__main__":
    main()
