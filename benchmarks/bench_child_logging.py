"""Time one sweep child's MLflow writes, per logging choice, in MLflow's own SQLite store and in the
store as gatelab prepares it (write-ahead log, `synchronous=NORMAL`).

    python benchmarks/bench_child_logging.py               # 200 children per case
    python benchmarks/bench_child_logging.py --children 50

A child is the record the vectorized sweeper builds (`gatelab.tracking.records.trained`) for a
job of `model=mlp dataset=xor seed=... optimizer.learning_rate=0.5`: its tags and params from that
config composed by Hydra, outcome metrics, weights and predictions from a 2-2-1 MLP, and a
2000-epoch loss curve made up here (nothing is trained). It is written as the sweeper writes it
(`gatelab.tracking.writer.write`): one `create_run` with its tags, one `log_batch` of its params,
metric points and weights/predictions tags, one `set_terminated`; each child of a fresh sweep
parent run. The choices are the `loss` metric's points (`tracking.max_loss_points`: 0 for the
final loss only, the sweeper's 50, a single run's 1000) and, as a per-job sweep logs them, the
weights and predictions as two JSON artifacts (`weights.json`, the table `predictions.json`)
instead of tags. Each case writes `--children` runs into a fresh store in a temporary folder,
the two stores in alternating batches of 20 (so a change of the machine's load touches both
alike); the store created by MLflow alone is the baseline, and the ratio is printed. Expect the
gatelab store to be 1.1-1.6x faster on a quiet machine (the least for 1000 points), and more the
busier the disk.
"""

import argparse
import dataclasses
import logging
import os
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from gatelab.config import register_configs
from gatelab.data import truth_table
from gatelab.engine.models import build_mlp, layer_weights
from gatelab.history import History
from gatelab.sweeps.sweeper import task_config
from gatelab.tracking import records, writer
from gatelab.tracking.experiment import configure
from gatelab.tracking.naming import config_params

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"
OVERRIDES = ["model=mlp", "dataset=xor"]
SWEPT = ["seed", "optimizer.learning_rate"]
LEARNING_RATE = "0.5"
BATCH = 20
CHOICES = {
    "final loss only (max_loss_points=0)": (0, False),
    "50-point loss (vectorized default)": (50, False),
    "50-point loss + 2 JSON artifacts": (50, True),
    "1000-point loss (a single run's)": (1000, False),
}


class Children:
    """Records of the children of one sweep, built as the vectorized sweeper builds them."""

    def __init__(self, folder: Path):
        register_configs()
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("config", overrides=OVERRIDES, return_hydra_config=True)
        self.choices = dict(cfg.hydra.runtime.choices)
        self.params = config_params(task_config(cfg))
        self.epochs = cfg.trainer.epochs
        self.folder = folder
        self.dataset = truth_table("xor", 2)
        model = build_mlp(n_inputs=2, hidden_units=[2])
        self.layers = layer_weights(model)
        self.weights = model.get_weights()
        epochs = np.arange(1, self.epochs + 1)
        self.history = History(
            loss=(0.25 * np.exp(-epochs / 400)).astype(np.float32), solved=epochs >= 800
        )
        targets = self.dataset.targets
        self.outputs = 0.8 * targets + 0.1

    def record(self, number: int, parent_run_id: str, max_loss_points: int) -> records.RunRecord:
        """Child `number` of the sweep with parent run `parent_run_id`."""
        overrides = [*OVERRIDES, f"seed={number}", f"optimizer.learning_rate={LEARNING_RATE}"]
        job = records.Job(
            overrides=overrides,
            choices=self.choices,
            output_dir=self.folder / "multirun" / str(number),
            parent_run_id=parent_run_id,
            number=number,
            swept=SWEPT,
        )
        return records.trained(
            job,
            name=records.run_name(job, "mlp-xor"),
            params={**self.params, "seed": str(number), "optimizer.learning_rate": LEARNING_RATE},
            user_tags={},
            history=self.history,
            outputs=self.outputs,
            inputs=self.dataset.inputs,
            targets=self.dataset.targets,
            layers=self.layers,
            weights=self.weights,
            epochs=self.epochs,
            max_loss_points=max_loss_points,
            dataset="xor",
        )


def write_children(
    client: MlflowClient, experiment_id: str, children: list[records.RunRecord], artifacts: bool
) -> float:
    """Seconds per child for writing `children`; with `artifacts`, as a per-job sweep logs them."""
    started = time.perf_counter()
    for record in children:
        if not artifacts:
            writer.write(client, experiment_id, record)
            continue
        without = dataclasses.replace(record, weights=None, predictions=None)
        run_id = writer.write(client, experiment_id, without)
        client.log_dict(run_id, record.weights, "weights.json")
        client.log_table(run_id, record.predictions, "predictions.json")
    return (time.perf_counter() - started) / len(children)


class Store:
    """A fresh store in `folder` with a sweep parent run: created by MLflow alone, or as
    gatelab's runs prepare it."""

    def __init__(self, folder: Path, prepared: bool):
        folder.mkdir()
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        if prepared:
            self.experiment_id = configure(uri, "bench")
        else:
            mlflow.set_tracking_uri(uri)
            self.experiment_id = MlflowClient().create_experiment("bench")
        self.client = MlflowClient(uri)
        run = self.client.create_run(self.experiment_id, run_name="sweep (bench)")
        self.parent_run_id = run.info.run_id
        self.written = 0

    def write(self, children: Children, count: int, max_loss_points: int, artifacts: bool) -> float:
        """Seconds per child for the next `count` children of this store's sweep."""
        numbers = range(self.written, self.written + count)
        self.written += count
        batch = [children.record(number, self.parent_run_id, max_loss_points) for number in numbers]
        return write_children(self.client, self.experiment_id, batch, artifacts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=200, help="runs per case (default 200)")
    arguments = parser.parse_args()
    if arguments.children < 1:
        parser.error(f"--children must be at least 1, got {arguments.children}")
    # MLflow announces each new store's tables, between the rows of the table printed here.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    print(f"load average {os.getloadavg()[0]:.2f}, {arguments.children} children per case")
    with tempfile.TemporaryDirectory() as directory:
        # The stores' artifacts (`mlartifacts/`) go beside them.
        os.chdir(directory)
        children = Children(Path(directory))
        example = children.record(0, "0" * 32, 50)
        print(
            f"a child: {len(example.tags)} tags at creation and "
            f"{len(writer.result_tags(example))} at the end, {len(example.params)} params, "
            f"{len(example.outcome)} outcome metrics and the loss points"
        )
        print(f"{'choice':<36} {'MLflow store':>14} {'gatelab store':>14} {'ratio':>7}")
        for number, (choice, (points, artifacts)) in enumerate(CHOICES.items()):
            stores = {
                prepared: Store(Path(directory) / f"{number}-{prepared}", prepared)
                for prepared in (False, True)
            }
            for store in stores.values():
                store.write(children, 3, points, artifacts)  # warm-up
            # In alternating batches: a change of the machine's load touches both stores alike.
            seconds = {prepared: 0.0 for prepared in stores}
            batches = max(1, arguments.children // BATCH)
            size = min(BATCH, arguments.children)
            for _ in range(batches):
                for prepared, store in stores.items():
                    seconds[prepared] += store.write(children, size, points, artifacts) / batches
            print(
                f"{choice:<36} {1000 * seconds[False]:>11.1f} ms {1000 * seconds[True]:>11.1f} ms"
                f" {seconds[False] / seconds[True]:>6.2f}x"
            )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
