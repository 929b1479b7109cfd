"""The sweeper's config, registered as `hydra/sweeper=search` when Hydra scans its plugins."""

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class SearchSweeperConf:
    _target_: str = "hydra_plugins.gatelab_search_sweeper.search_sweeper.SearchSweeper"
    # The study's trials in total, whoever ran them: a re-run of the command resumes to this.
    n_trials: int = 20
    # Trials asked from Optuna at a time; a batch's trials x seeds train as one population.
    batch_size: int = 20
    # tpe, random, cmaes, gp, qmc or grid (grid: choice or range values only).
    sampler: str = "tpe"
    sampler_seed: int | None = None
    # success_rate, epochs_to_solve_median or loss (the median final loss), or a list of two.
    objective: Any = "success_rate"
    # maximize or minimize, one per objective; null: each objective's own.
    direction: Any = None
    # Optuna's RDB storage; null: sqlite:///optuna.db in the folder the command runs in.
    storage: str | None = None
    # null: the command's overrides, so the same command resumes the same study.
    study_name: str | None = None
    # The study stops, in one line, when a larger share of its finished trials failed.
    max_failure_rate: float = 0.5
    # Its values (seed='range(100)') are not searched: every trial trains over all of them.
    seed_key: str = "seed"
    # A batch's trials x seeds cut into this many shards, each a job of the configured
    # hydra/launcher (joblib: side by side; submitit_slurm: a SLURM job each); 1: in this process.
    n_shards: int = 1
    # The search space as in the command line, e.g. optimizer.momentum: interval(0, 0.99).
    params: dict[str, str] | None = None


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="search",
    node=SearchSweeperConf,
    provider="gatelab_search_sweeper",
)
