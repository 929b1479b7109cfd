"""A search's settings, checked before anything trains, and the Optuna study they open.

The settings keep the names of Hydra's Optuna sweeper where they mean the same (`sampler`,
`direction`, `n_trials`, `storage`, `study_name`, `max_failure_rate`). The objectives are named
numbers of a trial's seeds (`sweeps.summary.group_metrics`), each with its natural direction.
A study records what its trials were scored on, and `n_trials` counts the trials that finished
for their own values: a trial stopped, or left by a process that died, is asked again.
"""

import importlib.util
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc

from gatelab.errors import ConfigError, shorten
from gatelab.redaction import redact
from gatelab.sweeps.search.space import SearchSpace, distribution_text, grid_of, seeds_text
from gatelab.tracking import store

log = logging.getLogger(__name__)

# An objective's name, the `group_metrics` number it is, and the direction it improves in.
OBJECTIVES = {
    "success_rate": ("success_rate", "maximize"),
    "epochs_to_solve_median": ("epochs_to_solve_median", "minimize"),
    "loss": ("loss_median", "minimize"),
}
# Each sampler: how it is made from (sampler_seed, space), and the packages it needs.
SAMPLERS: dict[str, tuple[Callable[[int | None, SearchSpace], Any], tuple[str, ...]]] = {
    # Batches are asked before any is told: the liar keeps a batch's trials apart.
    "tpe": (
        lambda seed, space: optuna.samplers.TPESampler(
            seed=seed, constant_liar=True, multivariate=True
        ),
        (),
    ),
    "random": (lambda seed, space: optuna.samplers.RandomSampler(seed=seed), ()),
    "cmaes": (lambda seed, space: optuna.samplers.CmaEsSampler(seed=seed), ("cmaes",)),
    "gp": (lambda seed, space: optuna.samplers.GPSampler(seed=seed), ("torch", "scipy")),
    "qmc": (lambda seed, space: optuna.samplers.QMCSampler(seed=seed), ("scipy",)),
    "grid": (lambda seed, space: optuna.samplers.GridSampler(grid_of(space), seed=seed), ()),
}
DIRECTIONS = ("maximize", "minimize")
# The study's user attribute: what its trials were scored on (`scored_on`).
SCORED_ON_ATTR = "gatelab.scored_on"
# Without `hydra.sweeper.storage`: a SQLite file in the folder the command runs in.
DEFAULT_STORAGE = "sqlite:///optuna.db"


@dataclass(frozen=True)
class Settings:
    """`hydra.sweeper`'s settings (hydra_plugins/gatelab_search_sweeper/config.py says each)."""

    n_trials: int = 20
    batch_size: int = 20
    sampler: str = "tpe"
    sampler_seed: int | None = None
    objective: list[str] = field(default_factory=lambda: ["success_rate"])
    direction: list[str] | None = None
    storage: str | None = None
    study_name: str | None = None
    max_failure_rate: float = 0.5
    seed_key: str = "seed"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def directions(self) -> list[str]:
        """Each objective's direction: as given, else the objective's own."""
        return self.direction or [OBJECTIVES[name][1] for name in self.objective]


def check(settings: Settings, space: SearchSpace) -> None:
    """One ConfigError naming the first bad setting, its value and what is allowed."""
    if settings.n_trials < 1:
        raise ConfigError(
            f"hydra.sweeper.n_trials={settings.n_trials}: a study runs at least 1 trial; "
            "e.g. hydra.sweeper.n_trials=100"
        )
    if settings.batch_size < 1:
        raise ConfigError(
            f"hydra.sweeper.batch_size={settings.batch_size}: at least 1 trial is asked at a time"
        )
    if settings.sampler not in SAMPLERS:
        raise ConfigError(
            f"hydra.sweeper.sampler={settings.sampler} is not a sampler: choose one of "
            f"{', '.join(SAMPLERS)}"
        )
    if not 1 <= len(settings.objective) <= 2:
        raise ConfigError(
            f"hydra.sweeper.objective={settings.objective}: one objective, or two for a "
            "multi-objective study"
        )
    for name in settings.objective:
        if name not in OBJECTIVES:
            raise ConfigError(
                f"hydra.sweeper.objective={name} is not an objective: choose one of "
                f"{', '.join(OBJECTIVES)}"
            )
    for direction in settings.directions:
        if direction not in DIRECTIONS:
            raise ConfigError(f"hydra.sweeper.direction={direction}: choose maximize or minimize")
    if len(settings.directions) != len(settings.objective):
        raise ConfigError(
            f"hydra.sweeper.direction={settings.direction}: one direction per objective "
            f"({', '.join(settings.objective)})"
        )
    if not 0 <= settings.max_failure_rate <= 1:
        raise ConfigError(
            f"hydra.sweeper.max_failure_rate={settings.max_failure_rate}: a share of trials "
            "between 0 and 1"
        )
    missing = missing_packages(settings.sampler)
    if missing:
        raise ConfigError(
            f"hydra.sweeper.sampler={settings.sampler} needs {', '.join(missing)}: pip install "
            f"{' '.join(missing)}, or use sampler=tpe"
        )
    if settings.sampler == "grid":
        grid_of(space)


def sampler_of(settings: Settings, space: SearchSpace) -> optuna.samplers.BaseSampler:
    """The sampler named by `settings.sampler` (`check` has refused a missing package)."""
    make, _ = SAMPLERS[settings.sampler]
    return make(settings.sampler_seed, space)


def missing_packages(sampler: str) -> list[str]:
    """The packages `sampler` imports when it first samples that this environment lacks: Optuna
    imports them lazily, so a study would fail at its second ask, not when it opens."""
    _, needs = SAMPLERS[sampler]
    return [name for name in needs if importlib.util.find_spec(name) is None]


def study_name_of(settings: Settings, overrides: list[str]) -> str:
    """The study's name: as given, else the command's overrides, so the same command resumes it."""
    # Redacted: the name is stored in Optuna's storage and shown by its dashboard.
    return redact(settings.study_name or "search " + " ".join(overrides))


def open_study(settings: Settings, space: SearchSpace, overrides: list[str]) -> optuna.Study:
    """Create the study in its storage, or load it: the same command resumes its study.
    ConfigError, naming the storage without its password, when it cannot be opened."""
    sampler = sampler_of(settings, space)
    url = settings.storage or DEFAULT_STORAGE
    try:
        storage = _storage(url)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as error:
        raise ConfigError(
            f"hydra.sweeper.storage={redact(url)} cannot be opened ({_storage_failure(error)}): "
            "give a database URL Optuna can open, e.g. sqlite:///optuna.db (in a folder that "
            "exists) or postgresql://host/optuna"
        ) from error
    # Not Optuna's line on creating or reusing it: the search's own names the study and its
    # trials, and a study refused (`check_scored_on`) is then one line.
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.create_study(
            storage=storage,
            study_name=study_name_of(settings, overrides),
            sampler=sampler,
            directions=settings.directions,
            load_if_exists=True,
        )
    except ValueError as error:  # a study name or direction the storage refuses
        raise ConfigError(f"hydra.sweeper: the study cannot be opened: {error}") from error
    finally:
        optuna.logging.set_verbosity(verbosity)


def _storage(url: str, attempts: int = 5) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage at `url`. Sweeps started together race to create its tables (on
    PostgreSQL the loser's `CREATE TYPE` or `CREATE TABLE` fails): the loser tries again and
    finds them made.

    A SQLite file is put in write-ahead-log mode, as the MLflow store is (`tracking.store`): a
    trial's many small commits wait for no disk sync, and sweeps sharing it do not block each
    other's reads; a user attribute costs 3 ms instead of 12 on this machine's disk.
    """
    path = storage_path(url)
    if path is not None:
        store.install_sqlite_settings()
        store.write_ahead(path)
    for attempt in range(1, attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            time.sleep(0.2 * attempt)
    return optuna.storages.RDBStorage(url)


def _storage_failure(error: BaseException) -> str:
    """Why a storage URL could not be opened, in a few words without credentials."""
    if isinstance(error, sqlalchemy.exc.NoSuchModuleError):
        return "no database of that name"
    if isinstance(error, sqlalchemy.exc.ArgumentError):
        return "not a database URL"
    if isinstance(error, ImportError):
        return "its database driver is not installed"
    cause = error.orig if isinstance(error, sqlalchemy.exc.DBAPIError) else error
    lines = str(cause).strip().splitlines()
    return redact(lines[0]) if lines else type(cause).__name__


def storage_path(storage: str | None) -> Path | None:
    """The file of a SQLite storage, for the docs and the log line; None for a server."""
    uri = storage or DEFAULT_STORAGE
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def objective_values(metrics: dict[str, float], objective: list[str]) -> list[float]:
    """A trial's objective values from its seeds' `group_metrics`; a number no seed has (no
    seed solved, every loss diverged) is the worst there is."""
    values = []
    for name in objective:
        key, direction = OBJECTIVES[name]
        worst = -math.inf if direction == "maximize" else math.inf
        values.append(float(metrics.get(key, worst)))
    return values


def scored_on(
    settings: Settings, space: SearchSpace, choices: dict[str, str], params: dict[str, str]
) -> dict[str, str]:
    """What a trial's score depends on, as `key: value` of the command line: the config's group
    options (`model: mlp`), the seeds, each searched range, the fixed config (`params`, as the
    study's run logs them: the searched keys and seeds left out) and the objective.

    Not the sampler, `n_trials` or `batch_size`: they choose which trials run, not their scores.
    """
    record = {group: option for group, option in choices.items() if not group.startswith("hydra")}
    if space.seeds is not None:
        record[settings.seed_key] = seeds_text(space.seeds)
    record |= {key: distribution_text(value) for key, value in space.distributions.items()}
    record |= params
    record["hydra.sweeper.objective"] = ",".join(settings.objective)
    record["hydra.sweeper.direction"] = ",".join(settings.directions)
    return record


def check_scored_on(study: optuna.Study, record: dict[str, str]) -> None:
    """Record on a new study what its trials are scored on (`scored_on`); refuse, in one line
    naming the first difference, to add trials scored on anything else to an existing one."""
    stored: dict[str, Any] | None = study.user_attrs.get(SCORED_ON_ATTR)
    if stored is None:
        if study.get_trials(deepcopy=False):
            log.warning(
                "study %r did not record what its trials were scored on (an earlier gatelab "
                "made it): this command's values are recorded",
                redact(study.study_name),
            )
        study.set_user_attr(SCORED_ON_ATTR, record)
        return
    different = [key for key in {**record, **stored} if stored.get(key) != record.get(key)]
    if not different:
        return
    key, more = different[0], len(different) - 1
    raise ConfigError(
        f"study {shorten(redact(study.study_name), 80)!r}: its trials were scored with "
        f"{_setting(key, stored)}, this command's with {_setting(key, record)}"
        f"{f' (and {more} more)' if more else ''}; run it with the study's values, "
        "or under another name (hydra.sweeper.study_name)"
    )


def _setting(key: str, record: dict[str, Any]) -> str:
    return f"{key}={shorten(redact(str(record[key])), 80)}" if key in record else f"no {key}"
