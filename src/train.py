"""Train one of the chapter's networks and track it in MLflow.

python src/train.py model=mlp dataset=xor
python src/train.py -m seed=0,1,2 optimizer.learning_rate=0.01,0.1,1.0
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from gatelab import cli
from gatelab.config import register_configs, validate
from gatelab.tracking import store

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Run one job; the returned final loss is what a Hydra sweeper would minimise."""
    with cli.config_errors_exit(HydraConfig.get().mode):
        # Every value and the store are checked in seconds, before TensorFlow's 5 s import: a
        # process that only launches jobs (joblib, Ray, SLURM), `--help` or `--cfg job` never
        # waits for it.
        validate(cfg)
        store.check(cfg.tracking.uri)
        from gatelab import hydra_job

        return hydra_job.run_hydra_job(cfg)


if __name__ == "__main__":
    cli.run_reporting_config_errors(main)
