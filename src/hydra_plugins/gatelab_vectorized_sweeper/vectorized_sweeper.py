"""`hydra/sweeper=vectorized`: a façade over `gatelab.sweeps.vectorized`, in the shape of Hydra's
own Optuna sweeper. Hydra imports this module whenever it scans its plugins, so the sweeper's
code (and TensorFlow) is imported only when a sweep runs."""

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
    ):
        from gatelab.sweeps.vectorized import VectorizedSweeperImpl

        self.sweeper = VectorizedSweeperImpl(params, max_jobs, runs_per_transaction)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.sweeper.sweep(arguments)
