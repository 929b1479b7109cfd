"""A search's settings, checked before anything trains, and the Optuna study they open.

The settings keep the names of Hydra's Optuna sweeper where they mean the same (`sampler`,
`direction`, `n_trials`, `storage`, `study_name`, `max_failure_rate`). The objectives are named
numbers of a trial's seeds (`sweeps.summary.group_metrics`), each with its natural direction.
"""

import math
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import sqlalchemy.exc
from optuna.trial import TrialState

from gatelab.errors import ConfigError
from gatelab.redaction import redact
from gatelab.sweeps.search_space import SearchSpace, grid_of
from gatelab.tracking import store
from gatelab.tracking.store import HOST_TAG, PID_TAG, process_alive, process_tags

# An objective's name, the `group_metrics` number it is, and the direction it improves in.
OBJECTIVES = {
    "success_rate": ("success_rate", "maximize"),
    "epochs_to_solve_median": ("epochs_to_solve_median", "minimize"),
    "loss": ("loss_median", "minimize"),
}
SAMPLERS = ("tpe", "random", "cmaes", "gp", "qmc", "grid")
DIRECTIONS = ("maximize", "minimize")
# A failed trial's reason, as a user attribute.
FAILURE_ATTR = "failure_reason"
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
    if settings.sampler == "grid":
        grid_of(space)


def sampler_of(settings: Settings, space: SearchSpace) -> optuna.samplers.BaseSampler:
    """The sampler named by `settings.sampler`; ConfigError when its extra package is missing."""
    seed = settings.sampler_seed
    try:
        if settings.sampler == "tpe":
            # Batches are asked before any is told: the liar keeps a batch's trials apart.
            return optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=True)
        if settings.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if settings.sampler == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed)
        if settings.sampler == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        if settings.sampler == "qmc":
            return optuna.samplers.QMCSampler(seed=seed)
        return optuna.samplers.GridSampler(grid_of(space), seed=seed)
    except ImportError as error:
        raise ConfigError(
            f"hydra.sweeper.sampler={settings.sampler} needs {error.name}: pip install "
            f"{error.name}, or use sampler=tpe"
        ) from error


def study_name_of(settings: Settings, overrides: list[str]) -> str:
    """The study's name: as given, else the command's overrides, so the same command resumes it."""
    # Redacted: the name is stored in Optuna's storage and shown by its dashboard.
    return redact(settings.study_name or "search " + " ".join(overrides))


def open_study(settings: Settings, space: SearchSpace, overrides: list[str]) -> optuna.Study:
    """Create the study in its storage, or load it: the same command resumes its study."""
    sampler = sampler_of(settings, space)
    try:
        return optuna.create_study(
            storage=_storage(settings.storage or DEFAULT_STORAGE),
            study_name=study_name_of(settings, overrides),
            sampler=sampler,
            directions=settings.directions,
            load_if_exists=True,
        )
    except ValueError as error:  # an existing study of other directions, say
        raise ConfigError(f"hydra.sweeper: the study cannot be opened: {error}") from error


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


def claim(trial: optuna.Trial) -> None:
    """Note on `trial` the host and process that run it (`gatelab.host`, `gatelab.pid`, as a
    run's tags): a trial its process leaves RUNNING when it dies can be told apart."""
    for key, value in process_tags().items():
        trial.set_user_attr(key, value)


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Tell FAIL the study's RUNNING trials whose process, on this host, is gone (`kill -9`, the
    out-of-memory killer): nothing else would end them, as Optuna's heartbeat is for `optimize`.
    Trials of live processes or of other hosts are left alone. Returns their numbers."""
    host, dead = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = str(trial.user_attrs.get(PID_TAG, ""))
        if trial.user_attrs.get(HOST_TAG) == host and pid.isdigit() and not process_alive(int(pid)):
            reason = f"its process ({pid}) died before the trial was told"
            study._storage.set_trial_user_attr(trial._trial_id, FAILURE_ATTR, reason)
            study.tell(trial.number, state=TrialState.FAIL)
            dead.append(trial.number)
    return dead
