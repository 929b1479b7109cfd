"""`hydra/sweeper=search`: an Optuna study whose trials are each scored over many seeds
(`sweeper`: ask -> score -> tell; `space`, `study`: what is searched and the study's settings;
`records`, `study_run`: the trials' runs and the study's parent run)."""
