"""A population's jobs as the child runs a per-job sweep would log (`tracking.records`), and the
arrays their sweep keeps of them (`sweep_folder.SweepArrays`): loss curves, final weights and
outputs, and the decision boundaries its galleries show."""

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from gatelab.build import Built
from gatelab.engine import population
from gatelab.engine.models import boundary_view, layer_weights
from gatelab.sweeps.cells import cell_name
from gatelab.sweeps.members import Members
from gatelab.sweeps.summary import CELL_GALLERY_JOBS, cell_keys
from gatelab.sweeps.sweep_folder import LOSSES_FILE, MEMBERS_FILE
from gatelab.tracking import records
from gatelab.tracking.naming import config_params, user_tags

# Where a trained member's arrays are (its `weights` and `predictions` tags, when short enough).
ARRAYS_TAG = "arrays"
ARRAYS_POINTER = (
    f"the parent run's {MEMBERS_FILE} (weights, outputs: the row of this run id in "
    f"<group>/run_ids) and {LOSSES_FILE} (the loss of every epoch, under this run id)"
)


def member_description(job_folder: Path | None) -> str:
    """A member's run description (its Overview page): where its arrays are and how to get its
    Keras model and figures; `records.RUN_ID_FIELD` stands for its run id.

    Args:
        job_folder: a job's folder of the sweep (`<sweep folder>/<job number>`).
    """
    folder = f"`{job_folder.parent.absolute()}`" if job_folder is not None else "of the sweep"
    return (
        "Trained with the rest of its vectorized sweep, so this run logged no file. Its loss at "
        f"every epoch is in `{LOSSES_FILE}` (under this run's id), its final weights and outputs "
        f"in `{MEMBERS_FILE}`: both in the sweep folder {folder} and on the sweep's run. For its "
        "Keras model and figures, re-run it alone (from the folder the sweep ran in): "
        f"`python -m gatelab.runs rerun {records.RUN_ID_FIELD}`"
    )


class MemberRecords:
    """The child runs of one population's jobs (config `cfg`, built as `built`)."""

    def __init__(self, cfg: DictConfig, built: Built, first_job: records.Job):
        self.built = built
        self.base_params = config_params(cfg)
        self.tags = user_tags(list(cfg.tags))
        self.gate = OmegaConf.select(cfg, "dataset.gate", default=None)
        self.layers = layer_weights(built.model)
        self.epochs, self.max_loss_points = cfg.trainer.epochs, cfg.tracking.max_loss_points
        # The jobs of a population share their sweep's folder.
        self.description = member_description(first_job.output_dir)

    def name_of(self, job: records.Job) -> str:
        return records.run_name(
            job, f"{self.built.model.name}-{records.dataset_name(job, self.gate)}"
        )

    def failed(
        self, job: records.Job, values: dict[str, Any], error: BaseException
    ) -> records.RunRecord:
        """The FAILED child of a job refused a value (`error`) before anything trained."""
        return records.failed(
            job,
            name=self.name_of(job),
            params={**self.base_params, **{key: str(value) for key, value in values.items()}},
            user_tags=self.tags,
            error=error,
        )

    def trained(
        self, members: Members, jobs: list[tuple[records.Job, dict[str, Any]]]
    ) -> list[records.RunRecord]:
        """The children of `jobs` (each job and its checked values), members `0..` of `members`
        in that order (any member past them was trained only to fill the compiled shape)."""
        history = members.history
        times = member_times(history, members.started, members.ended, len(jobs))
        return [
            records.trained(
                job,
                name=self.name_of(job),
                params={
                    **self.base_params,
                    **{key: str(value) for key, value in values.items() if key in self.base_params},
                },
                user_tags={**self.tags, ARRAYS_TAG: ARRAYS_POINTER},
                history=history.member(index),
                outputs=history.outputs[index],
                inputs=self.built.dataset.inputs,
                targets=self.built.dataset.targets,
                layers=self.layers,
                weights=members.weights(index),
                epochs=self.epochs,
                max_loss_points=self.max_loss_points,
                dataset=records.dataset_name(job, self.gate),
                start_time=times[index][0],
                end_time=times[index][1],
                description=self.description,
            )
            for index, (job, values) in enumerate(jobs)
        ]


def member_times(
    history: population.PopulationHistory, started: int, ended: int, count: int
) -> list[tuple[int, int]]:
    """The first `count` members' (start, end) in ms: each one's share of the population's
    training time, in proportion to the epochs it ran; starts a millisecond apart, so the UI
    lists them in order."""
    epochs = history.epochs_run.astype(float)
    shares = (ended - started) * epochs / max(epochs.sum(), 1.0)
    return [
        (started + index, started + index + max(1, round(share)))
        for index, share in enumerate(shares[:count])
    ]


def gallery_numbers(jobs: list[records.Job]) -> set[int]:
    """The jobs a sweep's galleries show: each cell's first `CELL_GALLERY_JOBS`, by number."""
    shown: set[int] = set()
    per_cell: dict[str, int] = {}
    for job in jobs:
        cell = cell_name(job.overrides, cell_keys(job.swept))
        if per_cell.get(cell, 0) < CELL_GALLERY_JOBS:
            per_cell[cell] = per_cell.get(cell, 0) + 1
            shown.add(job.number)
    return shown


def member_arrays(
    layers: list[tuple[str, list[str]]],
    history: population.PopulationHistory,
    rows: list[tuple[str, int]],
) -> dict[str, np.ndarray]:
    """The final weights and outputs of the members at `rows` (child run id, member index), a
    row each: the group `sweeps.sweep_folder.MEMBERS_FILE` keeps."""
    indices = [index for _, index in rows]
    names = [f"{layer}/{weight}" for layer, weights in layers for weight in weights]
    arrays = {"run_ids": np.array([run_id for run_id, _ in rows])}
    for name, weight in zip(names, history.weights, strict=True):
        arrays[name] = np.asarray(weight)[indices]
    arrays["output"] = np.asarray(history.outputs)[indices][..., 0]
    return arrays


def boundary_arrays(built: Built, weights: list[np.ndarray]) -> dict[str, np.ndarray]:
    """A member's final decision boundary as a single run's `boundary.npz` holds it."""
    if built.dataset.n_inputs != 2:
        return {}
    view = boundary_view(built.model, weights)
    return {
        "outputs": view.outputs.astype(np.float16),
        "hidden_lines": view.hidden_lines,
        "inputs": built.dataset.inputs,
        "targets": built.dataset.targets,
    }
