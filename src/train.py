"""Train one of the chapter's networks and track it in MLflow.

python src/train.py model=mlp dataset=xor
python src/train.py -m seed=0,1,2 optimizer.learning_rate=0.01,0.1,1.0
"""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from gatelab import cli, store, sweep
from gatelab.config import register_configs, validate

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Run one job; the returned final loss is what a Hydra sweeper would minimise."""
    hydra_config = HydraConfig.get()
    in_sweep = hydra_config.mode == RunMode.MULTIRUN
    with cli.config_errors_exit(hydra_config.mode):
        # Every value is checked before TensorFlow's 5 s import and before the store is touched.
        validate(cfg)
        # In seconds, before TensorFlow: a dead server or an unusable store file.
        store.check(cfg.tracking.uri)
    # TensorFlow comes with the pipeline, imported by the process that runs jobs: one that
    # only launches them (joblib, Ray, SLURM), `--help` or `--cfg job` never waits for it.
    from gatelab import pipeline

    parent_run_id = sweep.parent_run_id(hydra_config.sweep.dir) if in_sweep else None
    job = pipeline.Job(
        # As typed: `seed=${nope}` is the user's text, not an interpolation to resolve here.
        overrides=OmegaConf.to_container(hydra_config.overrides.task, resolve=False),
        choices=dict(hydra_config.runtime.choices),
        output_dir=Path(hydra_config.runtime.output_dir),
        sweep_run_id=parent_run_id,
        number=hydra_config.job.num if in_sweep else 0,
        swept=sweep.swept_keys_of(parent_run_id) if parent_run_id else [],
    )
    with cli.config_errors_exit(hydra_config.mode):
        return pipeline.run(cfg, job)


if __name__ == "__main__":
    cli.run_reporting_config_errors(main)
