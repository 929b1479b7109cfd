"""The running Hydra job, for `src/train.py`: its overrides, choices and folder as a `Job`, and
in a sweep its parent run and number (through the sweep folder, on any launcher); a job an
earlier run of its sweep finished is skipped (`sweeps.resume`)."""

import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from gatelab import pipeline
from gatelab.sweeps.sweep_folder import Sweep, sweep_of
from gatelab.tracking import records

log = logging.getLogger(__name__)


def run_hydra_job(cfg: DictConfig) -> float:
    """Run the running Hydra job, unless an earlier run of its sweep finished it (a resumed
    sweep, `sweeps.resume`); return its final loss."""
    hydra_config = HydraConfig.get()
    sweep = sweep_of(hydra_config.sweep.dir) if hydra_config.mode == RunMode.MULTIRUN else None
    # A single run has no job number (`hydra.job.num` is MISSING outside a multirun).
    if sweep is not None and hydra_config.job.num in sweep.finished:
        log.info("job %d finished in an earlier run of this sweep: skipped", hydra_config.job.num)
        return sweep.finished[hydra_config.job.num]
    return pipeline.run(cfg, hydra_job(sweep))


def hydra_job(sweep: Sweep | None = None) -> records.Job:
    """The running Hydra job: its overrides, choices, folder and, in a `sweep`, parent and
    number."""
    hydra_config = HydraConfig.get()
    # As typed: `seed=${nope}` is the user's text, not an interpolation to resolve here.
    overrides = OmegaConf.to_container(hydra_config.overrides.task, resolve=False)
    choices = dict(hydra_config.runtime.choices)
    output_dir = Path(hydra_config.runtime.output_dir)
    if sweep is None:
        return records.Job(overrides=overrides, choices=choices, output_dir=output_dir)
    return sweep.job(overrides, choices, output_dir, hydra_config.job.num)
