"""Measure the per-job costs a 100-job sweep cannot avoid, and the floor they put on its time.

    python benchmarks/bench_sweep_floor.py                  # 20 repeats of each cost
    python benchmarks/bench_sweep_floor.py --repeats 5 --jobs 100 --workers 2

`benchmarks/bench_sweep.py` times the real sweep of issue 3 (`src/train.py -m model=mlp
dataset=xor seed='range(10)' optimizer.learning_rate=<10 values>`, target 100 jobs in at most
25 s on 2 cores). This script explains where its floor is: in one process, on a fresh SQLite
MLflow store in a temporary directory, it times each thing every job does, as a warm-up call
then the median of `--repeats`:

- Hydra composing the job's config (`hydra.compose(..., return_hydra_config=True)` on `conf/`),
  which a sweep does twice per job: once when the sweeper checks the batch, once when the job
  runs; and the same for a one-key primary config, to show how much is Hydra's own `hydra:`.
- MLflow writing the 2000-point loss history (`gatelab.tracking.log_history`, one `log_batch`),
  against the same 2000 rows written into MLflow's `metrics` table with one raw SQLAlchemy
  executemany INSERT: what MLflow's ORM costs over plain SQL, not something gatelab does. The
  raw rows must read back through `MlflowClient().get_metric_history`, or the script exits 1.
- The run's bookkeeping (`tracking.tracked_run`: start_run with tags and parent, log_params of
  the composed config, end_run) and all of a job's logging (`tracking.log_results`: the Keras
  model, the 2000-point loss, the loss-curve PNG drawn by `plots.loss_curve`, the summary, the
  weights, predictions and the job's `.hydra` files).
- Training (`gatelab.training.train`, the chapter's XOR run), and its first call, which compiles.
- Creating a new store and its experiment (MLflow's schema migrations), once a sweep.
- Starting a process, median of 3: one importing what `src/train.py` imports to launch a sweep
  (no TensorFlow), and one importing the pipeline, TensorFlow with it, as every process that
  runs jobs does.

From those it prints two lower bounds on the sweep's wall time, where a job is its run, its
logging and its training. The basic launcher runs every job in one process: start, store, first
compile, then `jobs x (2 compositions + job)`. Joblib with `--workers` processes on as many
cores: the launching process starts, creates the store and composes each job's config once to
check the batch, serially; then the workers start, each compiling once, and share
`jobs x (composition + job)`. Left out, so they stay lower bounds: loky's and Hydra's per-job
work (output folders, config files, logging setup), the workers contending for the cores and
the SQLite store, and the sweep's parent run and summary. Nothing about time is asserted.

Measured on this 2-core machine (default run): a composition 48 ms (61% of it Hydra's own
`hydra:` config, which a one-key config also costs); the 2000 loss points 90 ms through MLflow
against 10 ms as one raw INSERT (8.8x); the run's bookkeeping 12 ms; all of a job's logging
179 ms, those 90 ms included; training 12 ms (first call 0.39 s); a new store 1.1 s; starting the
launching process 1.7 s and a process that runs jobs 4.7 s. Floors for 100 jobs: 36.3 s with the
basic launcher and 25.4 s with 2 joblib workers (40.1 s and 27.1 s in a second, noisier run),
both above the 25 s target, against 44-52 s and 34-40 s measured for the real sweeps.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gatelab.backend import keras  # first, so TensorFlow's start-up lines stay hidden

# isort: split
import hydra
import mlflow
import numpy as np
import sqlalchemy
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf, open_dict

from gatelab import pipeline, plots, tracking, training
from gatelab.config import register_configs
from gatelab.data import Dataset, truth_table
from gatelab.history import History
from gatelab.models import build_mlp

REPOSITORY = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPOSITORY / "conf"
JOB_OVERRIDES = ["seed=3", "optimizer.learning_rate=0.1"]
EXPERIMENT = "gatelab"
SEED = 3
LEARNING_RATE = 0.1
EPOCHS = 2000
IMPORT_REPEATS = 3
# What the process launching a sweep imports (src/train.py's own imports), and what a process
# running jobs imports on top: the pipeline, TensorFlow with it.
LAUNCHER_MODULES = "hydra, gatelab.cli, gatelab.sweep, gatelab.config"
WORKER_MODULES = f"{LAUNCHER_MODULES}, gatelab.pipeline"
TARGET_JOBS = 100
TARGET_SECONDS = 25.0


@dataclass(frozen=True)
class Measurements:
    """Each cost in seconds (medians), the check of the raw rows, and the sizes measured."""

    composition: float
    minimal_composition: float
    history: float
    raw_history: float
    raw_rows_readable: bool
    run: float
    logging: float
    training: float
    first_training: float
    launcher_import: float
    worker_import: float
    store_creation: float
    loss_points: int
    params: int

    @property
    def job(self) -> float:
        """What every job pays besides composing its config: its run, logging and training."""
        return self.run + self.logging + self.training


def seconds_of(action: Callable[[], object]) -> float:
    """Wall time of one call of `action`."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def median_after_warm_up(measure_once: Callable[[], float], repeats: int) -> float:
    """Median of `repeats` measurements, after one whose result is dropped."""
    measure_once()
    return statistics.median(measure_once() for _ in range(repeats))


def composition_seconds(
    config_dir: Path, config_name: str, overrides: list[str], repeats: int
) -> tuple[float, DictConfig]:
    """Median time of Hydra composing one job's config, hydra: node included, and that config."""
    with hydra.initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):

        def compose() -> DictConfig:
            return hydra.compose(config_name, overrides=overrides, return_hydra_config=True)

        seconds = median_after_warm_up(lambda: seconds_of(compose), repeats)
        return seconds, compose()


def without_hydra(config: DictConfig) -> DictConfig:
    """The job's own config, as the job receives it: the composed one without its hydra: node."""
    job_config = config.copy()
    with open_dict(job_config):
        del job_config["hydra"]
    return job_config


def write_hydra_files(config: DictConfig, overrides: list[str], directory: Path) -> Path:
    """The `.hydra` folder Hydra writes for a job (config, hydra, overrides), which a job logs."""
    hydra_dir = directory / ".hydra"
    hydra_dir.mkdir(parents=True)
    OmegaConf.save(without_hydra(config), hydra_dir / "config.yaml")
    OmegaConf.save({"hydra": config.hydra}, hydra_dir / "hydra.yaml")
    OmegaConf.save(OmegaConf.create(overrides), hydra_dir / "overrides.yaml")
    return hydra_dir


def train_chapter_run(dataset: Dataset) -> tuple[float, keras.Model, History]:
    """The chapter's XOR run from a fresh model and optimizer; only `train` itself is timed."""
    keras.utils.set_random_seed(SEED)
    model = build_mlp(n_inputs=2, hidden_units=[2])
    optimizer = keras.optimizers.SGD(learning_rate=LEARNING_RATE)
    start = time.perf_counter()
    history = training.train(
        model,
        optimizer,
        dataset.inputs,
        dataset.targets,
        loss="mse",
        epochs=EPOCHS,
        batch_size=1,
        shuffle=True,
        seed=SEED,
    )
    return time.perf_counter() - start, model, history


def mlflow_history_seconds(experiment_id: str, loss: np.ndarray) -> float:
    """Time `tracking.log_history` writing `loss` into a fresh run."""
    client = MlflowClient()
    run_id = client.create_run(experiment_id).info.run_id
    seconds = seconds_of(lambda: tracking.log_history(run_id, loss))
    client.set_terminated(run_id)
    return seconds


class RawMetricWriter:
    """The baseline: a loss history as rows of MLflow's `metrics` table, one executemany INSERT."""

    def __init__(self, tracking_uri: str, experiment_id: str):
        self.engine = sqlalchemy.create_engine(tracking_uri)
        self.metrics_table = sqlalchemy.Table(
            "metrics", sqlalchemy.MetaData(), autoload_with=self.engine
        )
        self.experiment_id = experiment_id
        self.last_run_id = ""

    def seconds(self, loss: np.ndarray) -> float:
        """Time writing `loss` as the rows `log_history` would, into a fresh run."""
        client = MlflowClient()
        run_id = client.create_run(self.experiment_id).info.run_id
        start = time.perf_counter()
        timestamp = int(time.time() * 1000)
        rows = [
            {
                "key": "loss",
                "value": float(value),
                "timestamp": timestamp,
                "run_uuid": run_id,
                "step": epoch,
                "is_nan": False,
            }
            for epoch, value in enumerate(loss, start=1)
        ]
        with self.engine.begin() as connection:
            connection.execute(self.metrics_table.insert(), rows)
        seconds = time.perf_counter() - start
        client.set_terminated(run_id)
        self.last_run_id = run_id
        return seconds


def raw_rows_read_back(run_id: str, loss: np.ndarray) -> bool:
    """Whether MLflow reads the raw rows of `run_id` back as the loss history, step for step."""
    history = MlflowClient().get_metric_history(run_id, "loss")
    history = sorted(history, key=lambda metric: metric.step)
    steps = [metric.step for metric in history]
    values = np.array([metric.value for metric in history])
    return steps == list(range(1, len(loss) + 1)) and np.allclose(values, loss)


def bookkeeping_seconds(parent_run_id: str, job: pipeline.Job, params: dict[str, object]) -> float:
    """Time a job's run bookkeeping: start_run (tags, parent), log_params, end_run."""

    def bookkeeping() -> None:
        with tracking.tracked_run(tracking.run_name(job.overrides), job.tags(), parent_run_id):
            mlflow.log_params(params)

    return seconds_of(bookkeeping)


def logging_seconds(
    model: keras.Model, dataset: Dataset, history: History, hydra_dir: Path
) -> float:
    """Time all of a job's logging into an open run: the figure, the summary, `log_results`."""
    outputs = np.asarray(model(dataset.inputs))
    metrics = {"accuracy": pipeline.accuracy(outputs, dataset.targets)}
    with mlflow.start_run():
        start = time.perf_counter()
        figure = plots.loss_curve(history.loss, f"{model.name} on xor")
        summary = pipeline.model_summary(model)
        tracking.log_results(
            model,
            dataset,
            outputs=outputs,
            loss=history.loss,
            epochs=len(history.loss),
            max_loss_points=len(history.loss),
            loss_file=None,
            metrics=metrics,
            figures={"loss_curve.png": figure},
            arrays={},
            summary=summary,
            config_dir=hydra_dir,
        )
        return time.perf_counter() - start


def import_seconds(modules: str) -> float:
    """Median wall time of a fresh Python process that imports `modules` and exits."""
    command = [sys.executable, "-c", f"import {modules}"]
    return statistics.median(
        seconds_of(
            lambda: subprocess.run(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
            )
        )
        for _ in range(IMPORT_REPEATS)
    )


def measure(repeats: int) -> Measurements:
    """Measure every cost, in this process on a fresh store in a temporary directory."""
    print(f"Starting new processes, {IMPORT_REPEATS} of each kind ...", flush=True)
    launcher_import = import_seconds(LAUNCHER_MODULES)
    worker_import = import_seconds(WORKER_MODULES)

    register_configs()
    with tempfile.TemporaryDirectory(prefix="bench_sweep_floor_") as temporary:
        directory = Path(temporary)
        print(f"Measuring 1 + {repeats} of each cost in {directory} ...", flush=True)
        composition, job_config = composition_seconds(CONFIG_DIR, "config", JOB_OVERRIDES, repeats)
        minimal_dir = directory / "minimal_conf"
        minimal_dir.mkdir()
        (minimal_dir / "minimal.yaml").write_text("seed: 0\n")
        minimal_composition, _ = composition_seconds(minimal_dir, "minimal", ["seed=3"], repeats)

        dataset = truth_table("xor", 2)
        first_training, _, _ = train_chapter_run(dataset)
        training_seconds = statistics.median(train_chapter_run(dataset)[0] for _ in range(repeats))
        _, model, history = train_chapter_run(dataset)

        tracking_uri = f"sqlite:///{directory}/mlflow.db"
        mlflow.set_tracking_uri(tracking_uri)
        # A new store is created (MLflow's schema migrations) with its first experiment.
        store_creation = seconds_of(
            lambda: mlflow.create_experiment(
                EXPERIMENT, artifact_location=(directory / "artifacts").as_uri()
            )
        )
        experiment_id = mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
        mlflow.set_experiment(experiment_id=experiment_id)
        history_seconds = median_after_warm_up(
            lambda: mlflow_history_seconds(experiment_id, history.loss), repeats
        )
        raw_writer = RawMetricWriter(tracking_uri, experiment_id)
        raw_seconds = median_after_warm_up(lambda: raw_writer.seconds(history.loss), repeats)
        raw_rows_readable = raw_rows_read_back(raw_writer.last_run_id, history.loss)

        parent_run_id = MlflowClient().create_run(experiment_id).info.run_id
        job = pipeline.Job(
            overrides=JOB_OVERRIDES,
            choices=dict(job_config.hydra.runtime.choices),
            output_dir=directory / "job",
            sweep_run_id=parent_run_id,
        )
        params = tracking.flatten(OmegaConf.to_container(without_hydra(job_config), resolve=True))
        run_seconds = median_after_warm_up(
            lambda: bookkeeping_seconds(parent_run_id, job, params), repeats
        )
        hydra_dir = write_hydra_files(job_config, JOB_OVERRIDES, directory / "job")
        all_logging_seconds = median_after_warm_up(
            lambda: logging_seconds(model, dataset, history, hydra_dir), repeats
        )
        MlflowClient().set_terminated(parent_run_id)

    return Measurements(
        composition=composition,
        minimal_composition=minimal_composition,
        history=history_seconds,
        raw_history=raw_seconds,
        raw_rows_readable=raw_rows_readable,
        run=run_seconds,
        logging=all_logging_seconds,
        training=training_seconds,
        first_training=first_training,
        launcher_import=launcher_import,
        worker_import=worker_import,
        store_creation=store_creation,
        loss_points=len(history.loss),
        params=len(params),
    )


def print_costs(measured: Measurements, repeats: int) -> None:
    """The table of costs in milliseconds, with where each enters the floor."""
    points = measured.loss_points
    rows = [
        ("Hydra compose, conf/ (hydra: node included)", measured.composition, "2 a job"),
        ("Hydra compose, a one-key primary config", measured.minimal_composition, "-"),
        (f"MLflow log_history, {points} loss points", measured.history, "in logging"),
        (f"  baseline: raw SQL INSERT of the same {points} rows", measured.raw_history, "-"),
        (f"MLflow run: start, {measured.params} params, end", measured.run, "1 a job"),
        ("all of a job's logging: log_results + figure", measured.logging, "1 a job"),
        (f"training, {EPOCHS} epochs (train, compiled)", measured.training, "1 a job"),
        ("training, first call (traces + XLA compile)", measured.first_training, "-"),
        ("new MLflow store and experiment", measured.store_creation, "1 a sweep"),
        ("process start: launcher (no TensorFlow)", measured.launcher_import, "1 a sweep"),
        ("process start: runs jobs (TensorFlow)", measured.worker_import, "1 a process"),
    ]
    label_width = max(len(label) for label, _, _ in rows)
    header = f"cost, median of {repeats} after a warm-up"
    print(f"{header:<{label_width}}  {'ms':>8}  in the floor")
    for label, seconds, in_floor in rows:
        print(f"{label:<{label_width}}  {seconds * 1000:>8.1f}  {in_floor}")
    print(
        f"A one-key config composes in {measured.minimal_composition / measured.composition:.0%}"
        " of conf/'s time: that share is Hydra's own hydra: config."
    )
    print(
        f"MLflow's log_batch takes {measured.history / measured.raw_history:.1f}x the raw INSERT "
        "of the same rows; get_metric_history reads the raw rows back: "
        f"{'yes' if measured.raw_rows_readable else 'NO'}."
    )


def print_floors(measured: Measurements, jobs: int, workers: int) -> None:
    """The two lower bounds on the sweep's wall time, and how they compare with the target."""
    composition = measured.composition
    # Every process that trains compiles once: its first job costs that much more.
    compile_extra = measured.first_training - measured.training
    basic_once = measured.worker_import + measured.store_creation + compile_extra
    basic_floor = basic_once + jobs * (2 * composition + measured.job)
    launcher_once = measured.launcher_import + measured.store_creation + jobs * composition
    workers_once = measured.worker_import + compile_extra
    workers_share = jobs * (composition + measured.job) / workers
    joblib_floor = launcher_once + workers_once + workers_share
    print(
        f"floor of {jobs} jobs, where a job = run {measured.run * 1000:.0f} + logging "
        f"{measured.logging * 1000:.0f} + training {measured.training * 1000:.0f} = "
        f"{measured.job * 1000:.0f} ms and a composition {composition * 1000:.0f} ms:"
    )
    print(
        f"  basic launcher: start, store, first compile {basic_once:.1f} s + {jobs} x "
        f"(2 compositions + job) {jobs * (2 * composition + measured.job):.1f} s "
        f"= {basic_floor:.1f} s"
    )
    print(
        f"  joblib, {workers} workers: launcher start, store and {jobs} checking compositions "
        f"{launcher_once:.1f} s + worker start and first compile {workers_once:.1f} s + {jobs} x "
        f"(composition + job) / {workers} {workers_share:.1f} s = {joblib_floor:.1f} s"
    )
    if jobs != TARGET_JOBS:
        print(f"target: not judged, the target is for {TARGET_JOBS} jobs")
        return
    for name, floor in (("basic launcher", basic_floor), ("joblib", joblib_floor)):
        verdict = "above the target" if floor > TARGET_SECONDS else "within the target"
        print(f"target {TARGET_SECONDS:.0f} s: the {name} floor, {floor:.1f} s, is {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=20, help="timed calls of each cost after one (default 20)"
    )
    parser.add_argument("--jobs", type=int, default=100, help="jobs in the sweep (default 100)")
    parser.add_argument(
        "--workers", type=int, default=2, help="joblib workers, one per core (default 2)"
    )
    args = parser.parse_args()
    if args.repeats < 1 or args.jobs < 1 or args.workers < 1:
        parser.error(
            f"--repeats, --jobs and --workers must be at least 1, got --repeats {args.repeats} "
            f"--jobs {args.jobs} --workers {args.workers}"
        )

    measured = measure(args.repeats)
    print()
    print_costs(measured, args.repeats)
    print()
    print_floors(measured, args.jobs, args.workers)
    if not measured.raw_rows_readable:
        print("FAILED: MLflow did not read the raw INSERT's rows back as the loss", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
