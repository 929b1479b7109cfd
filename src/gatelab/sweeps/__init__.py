"""Sweeps: one core under three sweepers. The core: a sweep's parent run (`sweep_run`), the
sweeper base (`sweeper`), training members (`members`), the sweep folder (`sweep_folder`), a
grid's results read back (`results`), summarised (`summary`, pure) and published (`publish`).
On it: Hydra's basic sweeper with the `mlflow_sweep` callback (`callback`), the vectorized
sweeper (`vectorized/`) and the search sweeper (`search/`)."""
