"""`hydra/sweeper=vectorized`: a façade over `gatelab.sweeps.vectorized`, in the shape of Hydra's
own Optuna sweeper. Hydra imports this module whenever it scans its plugins, so the sweeper's
code (and TensorFlow) is imported only when a sweep of gatelab's config runs; another app's
config gets Hydra's basic sweeper (`gatelab.sweeps.foreign_apps`)."""

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class VectorizedSweeper(Sweeper):
    def __init__(
        self,
        params: dict[str, str] | None = None,
        max_jobs: int = 100_000,
        runs_per_transaction: int = 500,
        max_batch_size: int | None = None,
        n_shards: int = 1,
    ):
        self.params = params
        self.max_jobs = max_jobs
        self.runs_per_transaction = runs_per_transaction
        self.max_batch_size = max_batch_size
        self.n_shards = n_shards
        self.sweeper: Any = None  # set by `setup`: gatelab's, or Hydra's basic sweeper

    @staticmethod
    def check_settings(settings: DictConfig) -> None:
        """Refuse a setting out of range (`max_jobs=0`) in one line. The `mlflow_sweep`
        callback calls this before it opens the sweep's run: Hydra makes the sweeper after."""
        from gatelab.sweeps.vectorized.settings import check_settings

        check_settings(
            max_jobs=settings.max_jobs,
            runs_per_transaction=settings.runs_per_transaction,
            max_batch_size=settings.max_batch_size,
            n_shards=settings.n_shards,
        )

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from gatelab.sweeps.foreign_apps import basic_sweeper_unless_gatelab

        self.sweeper = basic_sweeper_unless_gatelab(
            config, "vectorized", self.params, self.max_batch_size
        )
        if self.sweeper is None:
            from gatelab.sweeps.vectorized.sweeper import VectorizedSweeperImpl

            self.sweeper = VectorizedSweeperImpl(
                params=self.params,
                max_jobs=self.max_jobs,
                runs_per_transaction=self.runs_per_transaction,
                max_batch_size=self.max_batch_size,
                n_shards=self.n_shards,
            )
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.sweeper.sweep(arguments)
