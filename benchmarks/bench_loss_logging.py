"""Time logging the largest run's loss history, bounded as runs do, against every epoch as a metric.

    python benchmarks/bench_loss_logging.py                        # 2.5 million epochs
    python benchmarks/bench_loss_logging.py --baseline-epochs 20000

The largest run allowed (`trainer.epochs=2500000` on a 4-row truth table) once logged all its
epochs as points of metric `loss`: minutes of writing and a 600 MB SQLite store. A run now logs at
most `tracking.max_loss_points` (1000) points and every epoch in the artifact `loss.csv`. Both
are timed here in one process against fresh SQLite stores in a temporary folder; the baseline
logs `--baseline-epochs` epochs point by point and is scaled to the full run (its cost is linear
in points: one row each), so the script finishes in seconds. Expect the bounded logging to take
a few seconds, most of it writing the 49 MB CSV, and the baseline to be 50-200x slower.
"""

import argparse
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np

from gatelab import tracking

MAX_LOSS_POINTS = 1000


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
    rng = np.random.default_rng(0)
    loss = rng.random(args.epochs, dtype=np.float32)

    with tempfile.TemporaryDirectory() as folder:
        bounded_store = Path(folder) / "bounded"
        bounded_store.mkdir()

        def log_bounded(run_id: str) -> None:
            tracking.log_history(run_id, loss, epochs=args.epochs, max_points=MAX_LOSS_POINTS)
            tracking.log_loss_file(loss, None)

        bounded, bounded_size = timed_run(bounded_store, log_bounded)

        baseline_store = Path(folder) / "baseline"
        baseline_store.mkdir()
        sample = loss[: args.baseline_epochs]

        def log_every_epoch(run_id: str) -> None:
            tracking.log_history(run_id, sample, epochs=len(sample), max_points=len(sample))

        baseline, baseline_size = timed_run(baseline_store, log_every_epoch)

    scale = args.epochs / args.baseline_epochs
    print(f"loss history of {args.epochs:,} epochs")
    print(
        f"bounded ({MAX_LOSS_POINTS} points + loss.csv): {bounded:8.2f} s, "
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
