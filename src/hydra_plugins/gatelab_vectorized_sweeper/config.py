"""The sweeper's config, registered as `hydra/sweeper=vectorized` when Hydra scans its plugins."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore


@dataclass
class VectorizedSweeperConf:
    _target_: str = "hydra_plugins.gatelab_vectorized_sweeper.vectorized_sweeper.VectorizedSweeper"
    # As the basic sweeper's `params`: overrides added to every job's, such as `seed: range(100)`.
    params: dict[str, str] | None = None
    # A bigger grid is refused before anything runs (`gatelab.sweeps.vectorized.plan.MAX_JOBS`).
    max_jobs: int = 100_000
    # Children a transaction on an SQL store (`gatelab.tracking.bulk`): a stop or a crash
    # leaves whole transactions; elsewhere MLflow's client writes them one by one.
    runs_per_transaction: int = 500
    # As the basic sweeper's: the jobs that run through the launcher (those no population can
    # train, or every job of an app that is not gatelab's) go in batches of at most this many
    # consecutive jobs; null: all at once.
    max_batch_size: int | None = None
    # Shards a population is cut into, each one job of the configured hydra/launcher (joblib:
    # side by side; submitit_slurm: one SLURM job each), writing its children into the shared
    # store; 1: every population trains in this process. Named as Optuna's and Hydra's counts
    # (n_trials, n_jobs); not n_jobs, which in a sweep means its grid's jobs (max_jobs).
    n_shards: int = 1


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="vectorized",
    node=VectorizedSweeperConf,
    provider="gatelab_vectorized_sweeper",
)
