"""Time issue 16's search end to end, and check its answer against a grid, in one process.

    python benchmarks/bench_search.py                      # 100 trials x 100 seeds, TPE
    python benchmarks/bench_search.py --trials 20 --seeds 20   # a quick look, about 30 s

The search is the docs' command (docs/search.md), run as a user runs it, in a fresh temporary
folder with its own SQLite MLflow store and Optuna storage:

    src/train.py -m hydra/sweeper=search model=mlp dataset=xor 'seed=range(100)'
        'optimizer.learning_rate=tag(log, interval(0.01, 5))'
        'optimizer.momentum=interval(0, 0.99)' hydra.sweeper.n_trials=100

(batches of 20 trials, each trial over the 100 seeds: 10,000 members of 2000 epochs each). It
prints the wall time, members trained per second, and the share of the time in Optuna, training
and MLflow (the sweeper's own `search timings` line; the rest is start-up and composing).

The baseline, in the same process over the same seeds: a vectorized grid of 10 learning rates
log-spaced over the same range, plain SGD (momentum 0), plus the chapter's SGD(0.1) (11 cells).
It prints each one's success rate and its members per second. Then the best trial is re-run as a
vectorized grid of its values over the same seeds, whose success rate must equal the trial's.
Issue 16 asks: at most 3 minutes for the search, 100 FINISHED trials under one parent, and a
best success rate at least that of the grid's best cell. The script exits 1 if the store misses
a trial, or the re-run differs.
"""

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

REPOSITORY = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPOSITORY / "src" / "train.py"
LOW, HIGH = 0.01, 5.0
CHAPTER_RATE = 0.1
LOG_TAIL_LINES = 40


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def train(directory: Path, *arguments: str) -> tuple[float, str]:
    """`src/train.py -m ...` in `directory` with its own store: wall time and output."""
    command = [
        sys.executable,
        str(TRAIN_SCRIPT),
        "-m",
        "model=mlp",
        "dataset=xor",
        "trainer.print_every=0",
        f"tracking.uri=sqlite:///{directory}/mlflow.db",
        *arguments,
    ]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=directory, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        print("\n".join(output.splitlines()[-LOG_TAIL_LINES:]), file=sys.stderr)
        print(f"FAILED: exit {completed.returncode}: {' '.join(arguments)}", file=sys.stderr)
        sys.exit(1)
    return seconds, output


def cell_rates(directory: Path) -> dict[tuple[str, str], float]:
    """Success rate by (learning rate, momentum) from a grid's `sweep_summary.csv`."""
    (summary,) = directory.glob("multirun/*/*/sweep_summary.csv")
    solved: dict[tuple[str, str], list[int]] = {}
    with summary.open(newline="") as file:
        for row in csv.DictReader(file):
            cell = (row["optimizer.learning_rate"], row.get("optimizer.momentum", "0.0"))
            solved.setdefault(cell, []).append(int(row["solved"]))
    return {cell: float(np.mean(values)) for cell, values in solved.items()}


def overall_rate(directory: Path) -> float:
    """The share of a sweep's jobs that solved, from its `sweep_summary.csv`."""
    (summary,) = directory.glob("multirun/*/*/sweep_summary.csv")
    with summary.open(newline="") as file:
        return float(np.mean([int(row["solved"]) for row in csv.DictReader(file)]))


def trial_runs(directory: Path) -> tuple[dict, list]:
    """The study's parent run's data and its trials' runs."""
    client = MlflowClient(f"sqlite:///{directory}/mlflow.db")
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=50_000)
    parents = [run for run in runs if "optuna.study_name" in run.data.tags]
    trials = [run for run in runs if "optuna.trial.number" in run.data.tags]
    if len(parents) != 1:
        print(f"FAILED: {len(parents)} study runs, expected 1", file=sys.stderr)
        sys.exit(1)
    return parents[0], trials


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=20)
    arguments = parser.parse_args()
    seeds = f"seed=range({arguments.seeds})"
    with tempfile.TemporaryDirectory(prefix="bench_search_") as temporary:
        root = Path(temporary)
        search_dir, grid_dir, rerun_dir = root / "search", root / "grid", root / "rerun"
        for directory in (search_dir, grid_dir, rerun_dir):
            directory.mkdir()

        print(f"search: {arguments.trials} trials x {arguments.seeds} seeds ({load()}) ...")
        search_seconds, output = train(
            search_dir,
            "hydra/sweeper=search",
            seeds,
            f"optimizer.learning_rate=tag(log, interval({LOW}, {HIGH}))",
            "optimizer.momentum=interval(0, 0.99)",
            f"hydra.sweeper.n_trials={arguments.trials}",
            f"hydra.sweeper.batch_size={arguments.batch_size}",
        )
        parent, trials = trial_runs(search_dir)
        finished = [run for run in trials if run.info.status == "FINISHED"]
        members = arguments.trials * arguments.seeds
        (timings,) = re.findall(r"search timings: (.*)", output)
        shares = {
            step: float(seconds) for step, seconds in re.findall(r"(\w+) ([0-9.]+) s", timings)
        }
        best_rate = parent.data.metrics["best_success_rate"]
        best = {
            key.removeprefix("optuna.best."): value
            for key, value in parent.data.tags.items()
            if key.startswith("optuna.best.")
        }

        rates = [float(f"{rate:.3g}") for rate in np.geomspace(LOW, HIGH, 10)]
        grid_rates = ",".join(str(rate) for rate in [*rates, CHAPTER_RATE])
        print(f"grid: 11 learning rates x {arguments.seeds} seeds ({load()}) ...")
        grid_seconds, _ = train(
            grid_dir, "hydra/sweeper=vectorized", seeds, f"optimizer.learning_rate={grid_rates}"
        )
        by_cell = cell_rates(grid_dir)
        chapter = by_cell[(str(CHAPTER_RATE), "0.0")]
        grid_best_cell, grid_best = max(
            ((cell, rate) for cell, rate in by_cell.items() if float(cell[0]) in rates),
            key=lambda item: item[1],
        )

        print(f"re-run of the best trial as a grid ({load()}) ...")
        train(
            rerun_dir,
            "hydra/sweeper=vectorized",
            seeds,
            *(f"{key}={value}" for key, value in best.items()),
        )
        rerun = overall_rate(rerun_dir)

    print()
    print(f"search: {search_seconds:.1f} s for {arguments.trials} trials x {arguments.seeds} seeds")
    print(
        f"  {members / search_seconds:.0f} members trained per second, end to end; "
        f"{len(finished)}/{arguments.trials} trial runs FINISHED under one parent"
    )
    for step, seconds in shares.items():
        print(f"  {step:<10} {seconds:>7.2f} s  {100 * seconds / search_seconds:>5.1f}%")
    rest = search_seconds - sum(shares.values())
    share = 100 * rest / search_seconds
    print(f"  {'the rest':<10} {rest:>7.2f} s  {share:>5.1f}% (start-up: imports, stores, Hydra)")
    grid_members = 11 * arguments.seeds
    print(
        f"grid: {grid_seconds:.1f} s for {grid_members} members, "
        f"{grid_members / grid_seconds:.0f} members per second; the search trains "
        f"{(members / search_seconds) / (grid_members / grid_seconds):.1f}x as many a second"
    )
    print("success rate per cell of the grid (momentum 0):")
    for (rate, _), value in sorted(by_cell.items(), key=lambda item: float(item[0][0])):
        print(f"  lr={rate:<7} {value:.2f}")
    values = ", ".join(f"{key}={value}" for key, value in best.items())
    print(f"best trial: {values}: success rate {best_rate:.2f}")
    print(
        f"against the grid's best (lr={grid_best_cell[0]}): {grid_best:.2f}; the chapter's "
        f"SGD({CHAPTER_RATE}): {chapter:.2f}, on the same {arguments.seeds} seeds"
    )
    print(f"re-run of the best trial as a grid: {rerun:.2f} ({load()})")
    verdicts = [
        ("at most 180 s", search_seconds <= 180),
        (f"{arguments.trials} FINISHED trials", len(finished) == arguments.trials),
        ("best >= the grid's best", best_rate >= grid_best),
        ("the re-run equal", rerun == best_rate),
    ]
    print("targets: " + "; ".join(f"{name}: {'met' if ok else 'not met'}" for name, ok in verdicts))
    return 0 if len(finished) == arguments.trials and rerun == best_rate else 1


if __name__ == "__main__":
    sys.exit(main())
