"""One experiment from config to MLflow: seed, data, model, optimizer, train, evaluate, log."""

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
from hydra.utils import instantiate
from matplotlib.figure import Figure
from omegaconf import DictConfig

from gatelab import chapter, plots, sweep, tracking, training
from gatelab.backend import keras
from gatelab.config import validate
from gatelab.data import Dataset
from gatelab.history import LOSS_FILE, History, save_losses

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """Hydra's view of a run; the defaults describe a direct call without Hydra.

    Args:
        overrides: the command-line overrides, kept as a tag (and a single run's name).
        choices: the chosen option of each config group, kept as tags.
        output_dir: the job's output folder; its `.hydra` config files become artifacts.
        sweep_run_id: the sweep's MLflow run, parent of this one, when the job is in a sweep.
        number: the job's number in its sweep.
        swept: the keys its sweep varies; a job in a sweep is named by their values.
    """

    overrides: list[str] = field(default_factory=list)
    choices: dict[str, str] = field(default_factory=dict)
    output_dir: Path | None = None
    sweep_run_id: str | None = None
    number: int = 0
    swept: list[str] = field(default_factory=list)

    def run_name(self, model: keras.Model) -> str:
        if self.swept:
            return tracking.child_run_name(sweep.swept_values(self.overrides, self.swept))
        return tracking.run_name(self.overrides) or f"{model.name}-{self.dataset_name}"

    @property
    def dataset_name(self) -> str:
        return self.choices.get("dataset", "data")

    def label(self, run_name: str, cfg: DictConfig) -> str:
        """What tells this run apart in a title: its swept values, else seed and rate."""
        if self.swept:
            return run_name
        return tracking.child_run_name(
            {"seed": str(cfg.seed), "optimizer.learning_rate": str(cfg.optimizer.learning_rate)}
        )

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

    experiment_id = tracking.configure(cfg.tracking.uri, cfg.tracking.experiment)
    run_name = job.run_name(model)
    tags = {**job.tags(), **tracking.user_tags(list(cfg.tags))}
    with tracking.tracked_run(run_name, tags, job.sweep_run_id) as (active_run, outcome):
        mlflow.log_params(tracking.config_params(cfg))
        # The option's name (`xor`, `custom`); called without Hydra, the gate's.
        dataset_name = job.choices.get("dataset") or cfg.dataset.get("gate", "data")
        tracking.log_dataset(dataset, dataset_name)
        summary = model_summary(model)
        # The starting weights, for the first picture of how the decision boundary formed.
        initial_weights = [weight.numpy() for weight in model.weights]
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
            snapshot_epochs=snapshot_epochs(cfg.trainer.epochs),
        )
        if history.diverged:
            outcome.failure_reason = "diverged"
        loss_file = job.output_dir / LOSS_FILE if job.output_dir is not None else None
        if loss_file is not None:
            save_losses(history.loss, loss_file)

        outputs = np.asarray(model(dataset.inputs))
        metrics = outcome_metrics(outputs, dataset.targets, history)
        title = f"{model.name} on {dataset_name}: {job.label(run_name, cfg)}"
        figures, arrays = pictures(
            model,
            dataset,
            history,
            initial_weights=initial_weights,
            epochs_to_solve=metrics.get("epochs_to_solve"),
            title=title,
            with_figures=cfg.tracking.log_figures,
            output_dir=job.output_dir,
        )
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
            figures=figures,
            arrays=arrays,
            log_model=cfg.tracking.log_model,
            summary=summary,
            config_dir=job.output_dir / ".hydra" if job.output_dir else None,
        )
    log.info(
        "MLflow run %s (%s); to see it: %s, then %s",
        active_run.info.run_id,
        run_name,
        tracking.ui_command(),
        tracking.run_url(experiment_id, active_run.info.run_id),
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


BOUNDARY_FILE = "boundary.npz"
# Pictures of the decision boundary at the start and at this many epochs after.
BOUNDARY_STEPS = 5


def snapshot_epochs(epochs: int) -> list[int]:
    """The epochs whose weights draw `boundary_epochs.png`: quadratically spaced up to the last.

    Denser early, where a fast run forms its boundary: 80, 320, 720, 1280, 2000 of 2000.
    """
    steps = np.arange(1, BOUNDARY_STEPS + 1) / BOUNDARY_STEPS
    return sorted({max(1, int(round(epochs * step**2))) for step in steps})


def outcome_metrics(outputs: np.ndarray, targets: np.ndarray, history: History) -> dict[str, float]:
    """`accuracy`, `solved` (1 or 0) and, for a solved run only, `epochs_to_solve`."""
    metrics = {"accuracy": accuracy(outputs, targets)}
    metrics["solved"] = float(metrics["accuracy"] == 1.0)
    if metrics["solved"] and history.epochs_to_solve is not None:
        metrics["epochs_to_solve"] = history.epochs_to_solve
    return metrics


def pictures(
    model: keras.Model,
    dataset: Dataset,
    history: History,
    *,
    initial_weights: list[np.ndarray],
    epochs_to_solve: int | None,
    title: str,
    with_figures: bool,
    output_dir: Path | None,
) -> tuple[dict[str, Figure], dict[str, dict[str, np.ndarray]]]:
    """A run's PNGs by file name (its loss curve and, for 2 inputs, its decision boundary;
    none unless `with_figures`) and `.npz` arrays (the boundary's numbers, also written to
    `output_dir` for the sweep's gallery)."""
    figures = {}
    if with_figures:
        figures["loss_curve.png"] = plots.loss_curve(history.loss, title, epochs_to_solve)
    arrays = {}
    if dataset.n_inputs != 2:
        log.info("no decision-boundary picture: it needs 2 inputs, not %d", dataset.n_inputs)
        return figures, arrays
    if with_figures:
        figures.update(boundary_figures(model, initial_weights, history, dataset, title))
    arrays[BOUNDARY_FILE] = boundary_arrays(model, dataset)
    if output_dir is not None:
        np.savez_compressed(output_dir / BOUNDARY_FILE, **arrays[BOUNDARY_FILE])
    return figures, arrays


def boundary_view(
    model: keras.Model, weights: list[np.ndarray] | None = None
) -> plots.BoundaryView:
    """What `model` (or the same layers holding `weights`) computes over the input plane."""
    if weights is None:
        weights = [weight.numpy() for weight in model.weights]
    # The Dense layers' sums and activations in NumPy: a copy of the model with these weights
    # (`clone_model`) took 10 ms each, a tenth of a per-job sweep's job for its eight pictures.
    values = iter(weights)
    outputs = plots.plane_grid()
    for layer in model.layers:
        kernel = next(values)
        bias = next(values) if layer.use_bias else 0.0
        outputs = np.asarray(layer.activation(outputs @ kernel + bias))
    hidden_lines = np.zeros((0, 3))
    if len(model.layers) > 1:
        kernel = weights[0]
        bias = weights[1] if model.layers[0].use_bias else np.zeros(kernel.shape[1])
        hidden_lines = np.column_stack([kernel.T, bias])
    return plots.BoundaryView(
        outputs=outputs[:, 0].reshape(plots.GRID_POINTS, plots.GRID_POINTS),
        hidden_lines=hidden_lines,
    )


def boundary_figures(
    model: keras.Model,
    initial_weights: list[np.ndarray],
    history: History,
    dataset: Dataset,
    title: str,
) -> dict[str, Figure]:
    """`decision_boundary.png` at the end, `boundary_epochs.png` from the start to the end."""
    views = {0: boundary_view(model, initial_weights)}
    views.update(
        {epoch: boundary_view(model, weights) for epoch, weights in history.snapshots.items()}
    )
    inputs, targets = dataset.inputs, dataset.targets
    return {
        "decision_boundary.png": plots.decision_boundary(
            boundary_view(model), inputs, targets, title
        ),
        "boundary_epochs.png": plots.boundary_epochs(views, inputs, targets, title),
    }


def boundary_arrays(model: keras.Model, dataset: Dataset) -> dict[str, np.ndarray]:
    """The final boundary's numbers (`boundary.npz`), from which a sweep draws its gallery."""
    view = boundary_view(model)
    return {
        "outputs": view.outputs.astype(np.float16),
        "hidden_lines": view.hidden_lines,
        "inputs": dataset.inputs,
        "targets": dataset.targets,
    }


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
