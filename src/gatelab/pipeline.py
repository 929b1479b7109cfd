"""One experiment from config to MLflow: seed, data, model, optimizer, train, evaluate, log."""

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from gatelab import chapter, plots, tracking, training
from gatelab.backend import keras
from gatelab.config import validate
from gatelab.data import Dataset
from gatelab.history import LOSS_FILE, History, save_losses

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """Hydra's view of a run; the defaults describe a direct call without Hydra.

    Args:
        overrides: the command-line overrides, kept as a tag and used as the run name.
        choices: the chosen option of each config group, kept as tags.
        output_dir: the job's output folder; its `.hydra` config files become artifacts.
        sweep_run_id: the sweep's MLflow run, parent of this one, when the job is in a sweep.
        number: the job's number in its sweep.
    """

    overrides: list[str] = field(default_factory=list)
    choices: dict[str, str] = field(default_factory=dict)
    output_dir: Path | None = None
    sweep_run_id: str | None = None
    number: int = 0

    def run_name(self, model: keras.Model) -> str:
        return tracking.run_name(self.overrides) or f"{model.name}-{self.dataset_name}"

    @property
    def dataset_name(self) -> str:
        return self.choices.get("dataset", "data")

    def tags(self) -> dict[str, str]:
        tags = {
            "hydra.overrides": tracking.run_name(self.overrides),
            "hydra.job.num": str(self.number),
        }
        if self.output_dir is not None:
            tags["hydra.output_dir"] = str(self.output_dir)
        for group, option in self.choices.items():
            if not group.startswith("hydra/"):
                tags[f"hydra.choices.{group}"] = str(option)
        return tags


def run(cfg: DictConfig, job: Job | None = None) -> float:
    """Train and track one run of `cfg`; return its final epoch loss (not finite if it diverged)."""
    validate(cfg)
    job = job or Job()
    # Jobs of a sweep share the process: start each from a clean Keras state and its own seed.
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(cfg.seed)
    # The chapter's first cells train nothing: a config that lists tensors to draw is such a
    # run (`+experiment=book/random`), decided by its content, not by a name.
    if cfg.draws:
        return draw(cfg, job)
    console = CONSOLES[cfg.trainer.report]
    dataset: Dataset = instantiate(cfg.dataset)
    model: keras.Model = instantiate(cfg.model, n_inputs=dataset.n_inputs)
    optimizer: keras.optimizers.Optimizer = instantiate(cfg.optimizer)

    tracking.configure(cfg.tracking.uri, cfg.tracking.experiment)
    run_name = job.run_name(model)
    with tracking.tracked_run(run_name, job.tags(), job.sweep_run_id) as (active_run, outcome):
        mlflow.log_params(tracking.config_params(cfg))
        summary = model_summary(model)
        log.info("\n%s", summary)
        history = training.train(
            model,
            optimizer,
            dataset.inputs,
            dataset.targets,
            loss=cfg.trainer.loss,
            epochs=cfg.trainer.epochs,
            batch_size=cfg.trainer.batch_size,
            shuffle=cfg.trainer.shuffle,
            seed=cfg.seed,
            jit_compile=cfg.trainer.jit_compile,
            record_outputs=console.series is not None,
        )
        if history.diverged:
            outcome.failure_reason = "diverged"
        loss_file = job.output_dir / LOSS_FILE if job.output_dir is not None else None
        if loss_file is not None:
            save_losses(history.loss, loss_file)

        outputs = np.asarray(model(dataset.inputs))
        metrics = {"accuracy": accuracy(outputs, dataset.targets)}
        if history.epochs_to_solve is not None:
            metrics["epochs_to_solve"] = history.epochs_to_solve
        console.report(
            history,
            dataset,
            outputs=outputs,
            model=model,
            metrics=metrics,
            print_every=cfg.trainer.print_every,
            epochs=cfg.trainer.epochs,
        )
        if console.series is not None:
            # Steps as the chapter numbers them: 0-based.
            for key, values in console.series(history, dataset).items():
                tracking.log_series(active_run.info.run_id, key, values)
        tracking.log_results(
            model,
            dataset,
            outputs=outputs,
            loss=history.loss,
            epochs=cfg.trainer.epochs,
            max_loss_points=cfg.tracking.max_loss_points,
            loss_file=loss_file,
            metrics=metrics,
            loss_figure=(
                plots.loss_curve(history.loss, f"{model.name} on {job.dataset_name}")
                if cfg.tracking.log_figures
                else None
            ),
            log_model=cfg.tracking.log_model,
            summary=summary,
            config_dir=job.output_dir / ".hydra" if job.output_dir else None,
        )
    log.info(
        "MLflow run %s (%s); to see it: %s", active_run.info.run_id, run_name, tracking.ui_command()
    )
    return float(history.loss[-1])


def draw(cfg: DictConfig, job: Job) -> float:
    """A run that only draws `cfg.draws` and logs them, as the chapter's first cells; returns 0."""
    tracking.configure(cfg.tracking.uri, cfg.tracking.experiment)
    run_name = tracking.run_name(job.overrides) or "draws"
    with tracking.tracked_run(run_name, job.tags(), job.sweep_run_id) as (active_run, _):
        mlflow.log_params(tracking.config_params(cfg))
        drawn = chapter.draw(
            {
                name: (list(spec.shape), instantiate(spec.initializer))
                for name, spec in cfg.draws.items()
            }
        )
        mlflow.log_dict({name: values.tolist() for name, values in drawn.items()}, "draws.json")
        for name, values in drawn.items():
            tracking.log_series(active_run.info.run_id, name, values.ravel())
        if job.output_dir is not None and (job.output_dir / ".hydra").is_dir():
            mlflow.log_artifacts(str(job.output_dir / ".hydra"), "config")
    log.info(
        "MLflow run %s (%s); to see it: %s", active_run.info.run_id, run_name, tracking.ui_command()
    )
    return 0.0


def report(
    history: History,
    dataset: Dataset,
    outputs: np.ndarray,
    model: keras.Model,
    metrics: dict[str, float],
    *,
    print_every: int,
    epochs: int,
) -> None:
    """The chapter's console: losses as training went, predictions, weights, the outcome."""
    if print_every > 0:
        for epoch in range(print_every, len(history.loss) + 1, print_every):
            log.info("epoch %d/%d  loss %.6f", epoch, epochs, history.loss[epoch - 1])
    if history.diverged:
        log.warning("loss became %s at epoch %d: stopped", history.loss[-1], len(history.loss))
    log.info("predictions:\n%s", predictions_table(dataset, outputs))
    log.info("weights:\n%s", weights_text(model))
    log.info("accuracy %.2f, epochs_to_solve %s", metrics["accuracy"], history.epochs_to_solve)


@dataclass(frozen=True)
class Console:
    """What a run prints as it trains, and the per-step series it needs recorded and logs."""

    report: Callable[..., None]
    series: Callable[[History, Dataset], dict[str, np.ndarray]] | None = None


# `trainer.report` chooses one.
CONSOLES = {
    "default": Console(report=report),
    "chapter": Console(report=chapter.report, series=chapter.series),
}


def accuracy(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Fraction of rows whose output is on the target's side of 0.5."""
    return float(np.mean((outputs > 0.5) == (targets > 0.5)))


def model_summary(model: keras.Model) -> str:
    lines = io.StringIO()
    model.summary(print_fn=lambda line, line_break=True: lines.write(line + "\n"))
    return lines.getvalue()


def predictions_table(dataset: Dataset, outputs: np.ndarray) -> str:
    cells = [" ".join(f"{value:g}" for value in inputs) for inputs in dataset.inputs]
    width = max(len("inputs"), *map(len, cells)) + 2
    rows = ["inputs".ljust(width) + "target  output"]
    for cell, target, output in zip(cells, dataset.targets, outputs, strict=True):
        rows.append(f"{cell:{width}}{target[0]:<8g}{output[0]:.4f}")
    return "\n".join(rows)


def weights_text(model: keras.Model) -> str:
    return "\n".join(
        f"{weight.path}: {np.array2string(weight.numpy(), precision=4)}" for weight in model.weights
    )
