"""Sweeps: a parent run per Hydra multirun (`callback`), its jobs read back (`results`),
summarised (`summary`, pure) and published (`publish`); and the vectorized sweeper, whose jobs
train as populations (`vectorized`, `population`)."""
