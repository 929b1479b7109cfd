"""One experiment from config to MLflow: seed, data, model, optimizer, train, evaluate, log."""

import logging

import mlflow
import numpy as np
from hydra.utils import instantiate
from matplotlib.figure import Figure
from omegaconf import DictConfig

from gatelab.build import Built, build
from gatelab.config import validate
from gatelab.console import CONSOLES, model_summary, show_draws
from gatelab.engine import single
from gatelab.engine.models import boundary_view, draw_tensors, layer_weights, reset
from gatelab.history import LOSS_FILE, History, save_losses
from gatelab.plane import BOUNDARY_FILE
from gatelab.tracking import records
from gatelab.tracking.experiment import configure
from gatelab.tracking.links import run_url, ui_command
from gatelab.tracking.naming import child_run_name, config_params, single_run_name, user_tags
from gatelab.tracking.run import log_dataset, log_results, log_series, tracked_run
from gatelab.views import run_figures

log = logging.getLogger(__name__)

# Pictures of the decision boundary at the start and at this many epochs after.
BOUNDARY_STEPS = 5


def run(cfg: DictConfig, job: records.Job | None = None) -> float:
    """Train and track one run of `cfg`; return its final epoch loss (not finite if it diverged)."""
    validate(cfg)
    job = job or records.Job()
    # The chapter's first cells train nothing: a config that lists tensors to draw is such a
    # run (`+experiment=book/random`), decided by its content, not by a name.
    if cfg.draws:
        return run_draws(cfg, job)
    console = CONSOLES[cfg.trainer.report]
    built = build(cfg)
    dataset, model = built.dataset, built.model
    # The option's name (`xor`, `custom`); called without Hydra, the gate's.
    dataset_name = records.dataset_name(job, cfg.dataset.get("gate"))
    experiment_id = configure(cfg.tracking.uri, cfg.tracking.experiment, job.experiment_id)
    name = records.run_name(job, default=f"{model.name}-{dataset_name}")
    tags = user_tags(list(cfg.tags))
    with tracked_run(name, records.run_tags(job, tags)) as (active_run, ending):
        params = config_params(cfg)
        mlflow.log_params(params)
        log_dataset(dataset, dataset_name)
        summary = model_summary(model)
        log.info("\n%s", summary)
        # The starting weights, for the first picture of how the decision boundary formed.
        initial_weights = [weight.numpy() for weight in model.weights]
        history = train(built, cfg.seed, record_outputs=console.series is not None)
        outputs = np.asarray(model(dataset.inputs))
        record = records.trained(
            job,
            name=name,
            params=params,
            user_tags=tags,
            history=history,
            outputs=outputs,
            inputs=dataset.inputs,
            targets=dataset.targets,
            layers=layer_weights(model),
            weights=[weight.numpy() for weight in model.weights],
            epochs=cfg.trainer.epochs,
            max_loss_points=cfg.tracking.max_loss_points,
            dataset=dataset_name,
        )
        ending.failure_reason = record.result_tags.get("failure_reason")
        loss_file = job.output_dir / LOSS_FILE if job.output_dir is not None else None
        if loss_file is not None:
            save_losses(history.loss, loss_file)
        title = f"{model.name} on {dataset_name}: {label(job, name, cfg)}"
        figures, arrays = pictures(built, history, initial_weights, record, title, cfg)
        if job.output_dir is not None and BOUNDARY_FILE in arrays:
            np.savez_compressed(job.output_dir / BOUNDARY_FILE, **arrays[BOUNDARY_FILE])
        console.report(
            history,
            dataset,
            outputs=outputs,
            model=model,
            metrics=record.outcome,
            print_every=cfg.trainer.print_every,
            epochs=cfg.trainer.epochs,
        )
        if console.series is not None:
            # Steps as the chapter numbers them: 0-based.
            for key, values in console.series(history, dataset).items():
                log_series(active_run.info.run_id, key, values)
        log_results(
            record,
            model if cfg.tracking.log_model else None,
            dataset,
            outputs=outputs,
            loss=history.loss,
            loss_file=loss_file,
            figures=figures,
            arrays=arrays,
            summary=summary,
            config_dir=job.output_dir / ".hydra" if job.output_dir else None,
        )
    log.info(
        "MLflow run %s (%s); to see it: %s, then %s",
        active_run.info.run_id,
        name,
        ui_command(),
        run_url(experiment_id, active_run.info.run_id),
    )
    return float(history.loss[-1])


def train(built: Built, seed: int, record_outputs: bool) -> History:
    """Train the built model in place, keeping the weights of a few epochs for the pictures."""
    return single.train(
        built.model,
        built.optimizer,
        built.dataset.inputs,
        built.dataset.targets,
        built.schedule,
        seed=seed,
        record_outputs=record_outputs,
        snapshot_epochs=snapshot_epochs(built.schedule.epochs),
    )


def label(job: records.Job, run_name: str, cfg: DictConfig) -> str:
    """What tells this run apart in a title: its swept values, else seed and rate."""
    if job.swept:
        return run_name
    return child_run_name(
        {"seed": str(cfg.seed), "optimizer.learning_rate": str(cfg.optimizer.learning_rate)}
    )


def run_draws(cfg: DictConfig, job: records.Job) -> float:
    """A run that only draws `cfg.draws` and logs them, as the chapter's first cells; returns 0."""
    reset(cfg.seed)
    configure(cfg.tracking.uri, cfg.tracking.experiment, job.experiment_id)
    name = single_run_name(job.overrides) or "draws"
    with tracked_run(name, records.run_tags(job, {})) as (active_run, _):
        mlflow.log_params(config_params(cfg))
        drawn = draw_tensors(
            {
                tensor: (list(spec.shape), instantiate(spec.initializer))
                for tensor, spec in cfg.draws.items()
            }
        )
        show_draws(drawn)
        mlflow.log_dict({tensor: values.tolist() for tensor, values in drawn.items()}, "draws.json")
        for tensor, values in drawn.items():
            log_series(active_run.info.run_id, tensor, values.ravel())
        if job.output_dir is not None and (job.output_dir / ".hydra").is_dir():
            mlflow.log_artifacts(str(job.output_dir / ".hydra"), "config")
    log.info("MLflow run %s (%s); to see it: %s", active_run.info.run_id, name, ui_command())
    return 0.0


def snapshot_epochs(epochs: int) -> list[int]:
    """The epochs whose weights draw `boundary_epochs.png`: quadratically spaced up to the last.

    Denser early, where a fast run forms its boundary: 80, 320, 720, 1280, 2000 of 2000.
    """
    steps = np.arange(1, BOUNDARY_STEPS + 1) / BOUNDARY_STEPS
    return sorted({max(1, int(round(epochs * step**2))) for step in steps})


def pictures(
    built: Built,
    history: History,
    initial_weights: list[np.ndarray],
    record: records.RunRecord,
    title: str,
    cfg: DictConfig,
) -> tuple[dict[str, Figure], dict[str, dict[str, np.ndarray]]]:
    """A run's PNGs by file name (none unless `tracking.log_figures`) and `.npz` arrays: its
    loss curve and, for 2 inputs, its decision boundary (`boundary.npz` for a sweep's gallery)."""
    model, dataset = built.model, built.dataset
    figures = {}
    if cfg.tracking.log_figures:
        epochs_to_solve = record.outcome.get("epochs_to_solve")
        figures["loss_curve.png"] = run_figures.loss_curve(history.loss, title, epochs_to_solve)
    if dataset.n_inputs != 2:
        log.info("no decision-boundary picture: it needs 2 inputs, not %d", dataset.n_inputs)
        return figures, {}
    final = boundary_view(model)
    if cfg.tracking.log_figures:
        views = {0: boundary_view(model, initial_weights)}
        views.update(
            {epoch: boundary_view(model, weights) for epoch, weights in history.snapshots.items()}
        )
        figures["decision_boundary.png"] = run_figures.decision_boundary(
            final, dataset.inputs, dataset.targets, title
        )
        figures["boundary_epochs.png"] = run_figures.boundary_epochs(
            views, dataset.inputs, dataset.targets, title
        )
    arrays = {
        "outputs": final.outputs.astype(np.float16),
        "hidden_lines": final.hidden_lines,
        "inputs": dataset.inputs,
        "targets": dataset.targets,
    }
    return figures, {BOUNDARY_FILE: arrays}
