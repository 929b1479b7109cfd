"""A population's members, one way for every sweeper: the values they may differ in, each
checked once by the schema, and training them together (`engine.population`), each member
exactly as its run alone would train.

The vectorized sweeper turns `Members` into child runs (`sweeps.vectorized.population`); the
search sweeper into each trial's seeds' scores (`sweeps.search.sweeper`).
"""

import copy
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from gatelab.build import Built, build
from gatelab.config import checks, validate
from gatelab.engine import population
from gatelab.errors import ConfigError, one_line
from gatelab.history import outcome_metrics
from gatelab.sweeps.progress import Progress

log = logging.getLogger(__name__)

# The overrides a population's members may differ in; any other override is structural and
# gets its own composed config (and population).
VALUE_KEYS = ("seed", "optimizer.learning_rate", "optimizer.momentum")
# What a vectorized sweep changes in its jobs' configs unless the command line sets it: no Keras
# model or PNG per child (re-run a job alone to get them), a coarse `loss` metric per child
# (every member's full curve is in the parent's `losses.npz`).
SWEEP_DEFAULTS = {
    "tracking.log_model": False,
    "tracking.log_figures": False,
    "tracking.max_loss_points": 50,
}
# The most weights one population holds, members x parameters (`check_population_size`).
MAX_POPULATION_WEIGHTS = 20_000_000


def apply_sweep_defaults(cfg: DictConfig, set_on_command_line: set[str]) -> None:
    """Set `SWEEP_DEFAULTS` in `cfg` for the fields it has that the command line did not set."""
    with open_dict(cfg):
        for key, value in SWEEP_DEFAULTS.items():
            present = OmegaConf.select(cfg, key, default=_ABSENT) is not _ABSENT
            if present and key not in set_on_command_line:
                OmegaConf.update(cfg, key, value, merge=False)


_ABSENT = object()


def fallback_reason(cfg: DictConfig) -> str | None:
    """Why this config's jobs must run one by one, or None if they can run as a population."""
    validate(cfg)
    for key in ("tracking.log_model", "tracking.log_figures"):
        if OmegaConf.select(cfg, key, default=False):
            return f"{key}=true (a Keras model or figure per child)"
    built = build(cfg)
    return population.unsupported_reason(built.model, built.optimizer)


def check_population_size(cfg: DictConfig, members: int) -> None:
    """Refuse, before anything trains, a population too large for memory.

    A population holds each of its weights several times over (the weights, their velocities
    and gradients), for every member: `MAX_POPULATION_WEIGHTS` float32 are 80 MB a copy.
    """
    model, dataset = OmegaConf.to_object(cfg.model), OmegaConf.to_object(cfg.dataset)
    weights = model.parameter_count(dataset.n_inputs)
    if members * weights > MAX_POPULATION_WEIGHTS:
        raise ConfigError(
            f"hydra/sweeper=vectorized: {members:,} jobs of a model of {weights:,} parameters "
            f"are {members * weights:,} weights in one population, at most "
            f"{MAX_POPULATION_WEIGHTS:,}; sweep at most {MAX_POPULATION_WEIGHTS // weights:,} "
            "jobs of this model (fewer seeds or values), or a smaller model (model.hidden_units)"
        )


class ValueChecker:
    """Each member's values checked by the schema, one distinct value of each key at a time.

    The checks of the value-only keys are each about their own field (a seed's range, a
    positive rate, a momentum below 1), so a member whose every value passed on its own passes.
    A value is checked as `validate` would check the whole config holding it, with the same
    decision and error line: where the config passes and reads no field through another, by its
    field's schema checks alone (`checks.field_check`: microseconds, not a whole `validate`).
    """

    def __init__(self, cfg: DictConfig):
        self.cfg = copy.deepcopy(cfg)
        self.checked: dict[tuple[str, str], Any] = {}
        self.configured = {key: OmegaConf.select(cfg, key) for key in VALUE_KEYS}
        objects = checks.checked_objects(self.cfg)
        self.field_checks = (
            {key: checks.field_check(objects, key) for key in VALUE_KEYS}
            if objects is not None
            else {}
        )

    def checked_value(self, key: str, value: Any) -> Any:
        """`value` as the config holds it (1 becomes 1.0 in a float field); ConfigError if bad."""
        cache_key = (key, repr(value))
        if cache_key not in self.checked:
            self.checked[cache_key] = self._check(key, value)
        result = self.checked[cache_key]
        if isinstance(result, Exception):
            raise result
        return result

    def member_values(self, values: dict[str, Any]) -> dict[str, Any]:
        """A member's every value of `VALUE_KEYS`: `values` checked, the config's for the rest;
        ConfigError if one is bad."""
        checked = {key: self.checked_value(key, value) for key, value in values.items()}
        return {key: checked.get(key, self.configured[key]) for key in VALUE_KEYS}

    def _check(self, key: str, value: Any) -> Any:
        original = OmegaConf.select(self.cfg, key, default=_ABSENT)
        if original is _ABSENT:  # the config has no such field: nothing to set or put back
            return ConfigError(f"{key}={value}: the config has no field {key}")
        try:
            # OmegaConf converts the value to the field's type, or refuses it, as on a command line.
            OmegaConf.update(self.cfg, key, value, merge=False)
            if not self._passed_alone(key):
                validate(self.cfg)
            return OmegaConf.select(self.cfg, key)
        except ConfigError as error:
            return error
        except Exception as error:  # OmegaConf's type errors: the one-line form of the CLI
            return ConfigError(one_line(error))
        finally:
            OmegaConf.update(self.cfg, key, original, merge=False)

    def _passed_alone(self, key: str) -> bool:
        """Whether the value `key` holds passed its field's checks alone (ConfigError if they
        refused it); False when they cannot tell, and the whole config is to be validated."""
        check = self.field_checks.get(key)
        parent_key, _, name = key.rpartition(".")
        parent = OmegaConf.select(self.cfg, parent_key) if parent_key else self.cfg
        if check is None or OmegaConf.is_missing(parent, name):
            return False
        if OmegaConf.is_interpolation(parent, name):
            return False
        held = OmegaConf.select(self.cfg, key)
        if not isinstance(held, int | float | str | bool):
            return False
        try:
            check(held)
        except ConfigError:
            raise
        except Exception:  # not what a schema's check raises: `validate` words it
            return False
        return True


@dataclass(frozen=True)
class Members:
    """A trained population: the built config, each member's history and values, and when it
    trained (ms since the epoch)."""

    built: Built
    history: population.PopulationHistory
    values: list[dict[str, Any]]
    started: int
    ended: int

    def loss(self, index: int) -> float:
        """Member `index`'s final loss (NaN if it ran no epoch)."""
        losses = self.history.member(index).loss
        return float(losses[-1]) if len(losses) else float("nan")

    def outcome(self, index: int) -> dict[str, float]:
        """Member `index`'s outcome metrics, as its single run's (`history.outcome_metrics`)."""
        return outcome_metrics(
            self.history.outputs[index], self.built.dataset.targets, self.history.member(index)
        )

    def weights(self, index: int) -> list[np.ndarray]:
        """Member `index`'s final weights, layer by layer."""
        return [weight[index] for weight in self.history.weights]


def train_members(
    cfg: DictConfig,
    member_values: list[dict[str, Any]],
    progress: Progress | None = None,
    label: str | None = None,
) -> Members:
    """Train one member per entry of `member_values` (every `VALUE_KEYS` value, as
    `ValueChecker.member_values` gives them) of the config `cfg`, together.

    Args:
        label: what the progress line calls them (by default "training <count> members").
    """
    built = build(cfg)
    members = [
        population.Member(
            seed=values["seed"],
            learning_rate=values["optimizer.learning_rate"],
            momentum=values["optimizer.momentum"] or 0.0,
        )
        for values in member_values
    ]
    epochs = built.schedule.epochs
    label = label or f"training {len(members)} members"
    started_ms = int(time.time() * 1000)
    started = time.perf_counter()
    chunk_times: list[float] = []

    def on_chunk(done: int) -> None:
        chunk_times.append(time.perf_counter())
        if len(chunk_times) == 1:
            log.info(
                "training %d members: compiled, epoch %d/%d after %.2f s",
                len(members),
                done,
                epochs,
                chunk_times[0] - started,
            )
        if progress is not None:
            progress.show(f"{label}: epoch {done}/{epochs}", part="training")

    history = population.train_population(
        built.model,
        built.optimizer,
        members,
        built.dataset.inputs,
        built.dataset.targets,
        built.schedule,
        on_chunk=on_chunk,
    )
    if chunk_times:
        # The first chunk includes tracing and XLA compiling; the others are training alone.
        log.info(
            "trained %d members for %d epochs in %.2f s (compile and first chunk %.2f s)",
            len(members),
            epochs,
            chunk_times[-1] - started,
            chunk_times[0] - started,
        )
    return Members(built, history, list(member_values), started_ms, int(time.time() * 1000))
