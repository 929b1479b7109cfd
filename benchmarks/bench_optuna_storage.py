"""Ask and tell the same trials through Optuna's RDB storage on SQLite (the search sweeper's
default) and through MLflow's `mlflow.optuna.MlflowStorage`, in one process, and print each
one's time per trial and their ratio.

    python benchmarks/bench_optuna_storage.py               # 20 trials per storage
    python benchmarks/bench_optuna_storage.py --trials 100  # the issue's study size (minutes)

A trial is what the sweeper asks of a storage: `study.ask()` with a log-uniform learning rate and
a uniform momentum, then `study.tell(trial, value)`; the objective itself costs nothing here, so
the times are the storages' alone. Issue 16 asks for MlflowStorage to be measured against the
default before it could be offered as one.
"""

import argparse
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient


def ask_and_tell(storage: optuna.storages.BaseStorage | str, trials: int) -> float:
    """Seconds to ask and tell `trials` trials of a fresh TPE study in `storage`."""
    study = optuna.create_study(
        storage=storage,
        study_name="bench",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0),
    )
    started = time.perf_counter()
    for _ in range(trials):
        trial = study.ask()
        rate = trial.suggest_float("optimizer.learning_rate", 0.01, 5, log=True)
        momentum = trial.suggest_float("optimizer.momentum", 0, 0.99)
        study.tell(trial, momentum - abs(rate - 0.3))
    seconds = time.perf_counter() - started
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == trials, len(done)
    return seconds


def rdb(directory: Path) -> str:
    return f"sqlite:///{directory / 'optuna.db'}"


def mlflow_storage(directory: Path) -> optuna.storages.BaseStorage:
    from mlflow.optuna.storage import MlflowStorage

    uri = f"sqlite:///{directory / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    experiment_id = MlflowClient(uri).create_experiment("bench")
    return MlflowStorage(experiment_id=experiment_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per storage")
    arguments = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")  # MlflowStorage is experimental, and says so per call
    print(f"load average {os.getloadavg()[0]:.2f}, {arguments.trials} trials per storage")
    storages: dict[str, Callable[[Path], optuna.storages.BaseStorage | str]] = {
        "Optuna RDB on SQLite (default)": rdb,
        "mlflow.optuna.MlflowStorage": mlflow_storage,
    }
    seconds = {}
    with tempfile.TemporaryDirectory() as directory:
        for name, make in storages.items():
            folder = Path(directory) / str(len(seconds))
            folder.mkdir()
            seconds[name] = ask_and_tell(make(folder), arguments.trials)
            print(
                f"{name:32s} {seconds[name]:7.2f} s  "
                f"{seconds[name] / arguments.trials * 1000:8.1f} ms a trial"
            )
    default, mlflow_seconds = seconds.values()
    print(f"MlflowStorage / RDB: {mlflow_seconds / default:.1f}x the time")


if __name__ == "__main__":
    main()
