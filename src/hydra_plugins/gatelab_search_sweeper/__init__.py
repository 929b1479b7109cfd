"""`hydra/sweeper=search`: an Optuna study whose trials are each scored over many seeds."""
