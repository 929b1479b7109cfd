"""A config's objects: seeded, then its dataset, model, optimizer and training schedule.

The one place where a run's config tree becomes the engine's objects, for a single run and for
a population alike, so both start from the same seed, data, model and optimizer.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hydra.utils import instantiate
from omegaconf import DictConfig

from gatelab.data import Dataset
from gatelab.engine.models import reset
from gatelab.engine.schedule import Schedule

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class Built:
    """What a run trains: its data, a fresh model and optimizer, and how to train them."""

    dataset: Dataset
    model: "keras.Model"
    optimizer: "keras.optimizers.Optimizer"
    schedule: Schedule


def build(cfg: DictConfig) -> Built:
    """A clean Keras state seeded with `cfg.seed`, then `cfg`'s dataset, model and optimizer."""
    reset(cfg.seed)
    dataset: Dataset = instantiate(cfg.dataset)
    return Built(
        dataset=dataset,
        model=instantiate(cfg.model, n_inputs=dataset.n_inputs),
        optimizer=instantiate(cfg.optimizer),
        schedule=schedule(cfg.trainer),
    )


def schedule(trainer: DictConfig) -> Schedule:
    """The trainer's settings the compiled loops take (the others are the console's)."""
    return Schedule(
        loss=trainer.loss,
        epochs=trainer.epochs,
        batch_size=trainer.batch_size,
        shuffle=trainer.shuffle,
        jit_compile=trainer.jit_compile,
    )
