"""`hydra/sweeper=vectorized`'s own settings, refused in one line before any run opens.

Hydra calls the `mlflow_sweep` callback's `on_multirun_start`, which opens the sweep's parent
run, before it makes the sweeper: the callback checks them first (through the plugin's
`VectorizedSweeper.check_settings`), and the sweeper again as it starts, for a sweep without the
callback. Only the config layer is imported here: the callback's process has not imported the
sweeper, nor TensorFlow.
"""

from gatelab.config.checks import require


def check_settings(
    *, max_jobs: int, runs_per_transaction: int, max_batch_size: int | None, n_shards: int = 1
) -> None:
    """One ConfigError naming the first setting out of range, its value and what is allowed."""
    require(
        max_jobs >= 1,
        "hydra.sweeper.max_jobs",
        max_jobs,
        "a number of jobs of at least 1 (the most this sweep may run)",
    )
    require(
        runs_per_transaction >= 1,
        "hydra.sweeper.runs_per_transaction",
        runs_per_transaction,
        "a number of child runs of at least 1",
    )
    require(
        max_batch_size is None or max_batch_size >= 1,
        "hydra.sweeper.max_batch_size",
        max_batch_size,
        "a number of jobs of at least 1, or null (all at once)",
    )
    require(
        n_shards >= 1,
        "hydra.sweeper.n_shards",
        n_shards,
        "a number of shards a population is cut into, at least 1 (1: it trains in this process)",
    )
