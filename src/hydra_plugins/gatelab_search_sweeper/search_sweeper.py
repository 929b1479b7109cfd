"""`hydra/sweeper=search`: a façade over `gatelab.sweeps.search`, in the shape of Hydra's own
Optuna sweeper. Hydra imports this module whenever it scans its plugins, so the sweeper's code
(Optuna, TensorFlow) is imported only when a search of gatelab's config runs; another app's
config gets Hydra's basic sweeper (`gatelab.sweeps.foreign_apps`)."""

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, ListConfig, OmegaConf


class SearchSweeper(Sweeper):
    # The study's run is the sweep's parent: the mlflow_sweep callback leaves it to this sweeper.
    opens_parent_run = True

    def __init__(
        self,
        n_trials: int = 20,
        batch_size: int = 20,
        sampler: str = "tpe",
        sampler_seed: int | None = None,
        objective: Any = "success_rate",
        direction: Any = None,
        storage: str | None = None,
        study_name: str | None = None,
        max_failure_rate: float = 0.5,
        seed_key: str = "seed",
        n_shards: int = 1,
        params: dict[str, str] | None = None,
    ):
        # Settings of gatelab's search; `setup` sees whether the app's config is gatelab's.
        self.settings = dict(
            n_trials=n_trials,
            batch_size=batch_size,
            sampler=sampler,
            sampler_seed=sampler_seed,
            objective=_as_list(objective),
            direction=_as_list(direction) if direction is not None else None,
            storage=storage,
            study_name=study_name,
            max_failure_rate=max_failure_rate,
            seed_key=seed_key,
            params=_plain(params) or {},
        )
        self.n_shards = n_shards
        self.sweeper: Any = None  # set by `setup`: gatelab's, or Hydra's basic sweeper

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from gatelab.sweeps.foreign_apps import basic_sweeper_unless_gatelab

        self.sweeper = basic_sweeper_unless_gatelab(config, "search", self.settings["params"])
        if self.sweeper is None:
            from gatelab.sweeps.search.study import Settings
            from gatelab.sweeps.search.sweeper import SearchSweeperImpl

            self.sweeper = SearchSweeperImpl(Settings(**self.settings), self.n_shards)
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.sweeper.sweep(arguments)


def _as_list(value: Any) -> list[str]:
    if isinstance(value, ListConfig | list | tuple):
        return [str(item) for item in value]
    return [str(value)]


def _plain(params: Any) -> dict[str, str] | None:
    if params is None:
        return None
    container = OmegaConf.to_container(params) if isinstance(params, DictConfig) else params
    return {str(key): str(value) for key, value in container.items()}
