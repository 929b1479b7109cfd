"""What gatelab's sweepers share, as Hydra's own sweepers share `Sweeper`: set-up with the
configured launcher, the command's overrides parsed, `multirun.yaml` saved (redacted), timings,
a job's config as its task function sees it, and why a config's jobs run one by one.

`VectorizedSweeperImpl` and `SearchSweeperImpl` subclass `SweeperImpl`; each keeps only what it
does with the jobs (a grid of populations; ask -> score -> tell).
"""

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from gatelab.errors import ConfigError
from gatelab.redaction import redact_files
from gatelab.sweeps.members import fallback_reason


class Timings(dict):
    """Seconds spent in each step of a sweep, added up over its populations or batches."""

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self[step] = self.get(step, 0.0) + time.perf_counter() - started

    def __str__(self) -> str:
        return ", ".join(f"{step} {seconds:.2f} s" for step, seconds in self.items())


class SweeperImpl:
    """A gatelab sweeper's implementation; the plugin in `hydra_plugins` only delegates to it.

    Args:
        params: as the basic sweeper's `params`: overrides added to every job's.
    """

    def __init__(self, params: dict[str, str] | None = None):
        self.params = params or {}
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None
        self.timings = Timings()

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def given(self, arguments: list[str]) -> list[str]:
        """The sweep's overrides as given: the sweeper's `params`, then the command line's."""
        return [*(f"{key}={value}" for key, value in self.params.items()), *arguments]

    def parsed(self, arguments: list[str]) -> list[Override]:
        """`given(arguments)` parsed by Hydra's override grammar."""
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        return parser.parse_overrides(self.given(arguments))

    @property
    def sweep_dir(self) -> Path:
        return Path(self.config.hydra.sweep.dir).absolute()

    def save_multirun_yaml(self) -> None:
        """The sweep folder with Hydra's `multirun.yaml`, credentials redacted, as the basic
        sweeper writes it."""
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        path = self.sweep_dir / "multirun.yaml"
        OmegaConf.save(self.config, path)
        redact_files([path])

    def compose(self, overrides: list[str]) -> DictConfig:
        """A job's config from `overrides`, composed by Hydra's config loader."""
        with self.timings.timed("compose"):
            return self.hydra_context.config_loader.load_sweep_config(self.config, overrides)


def launch_batches(numbers: list[int], max_batch_size: int | None) -> Iterator[list[int]]:
    """Jobs `numbers` as the launcher takes them: runs of consecutive numbers (a launch numbers
    its jobs from its first), each cut into batches of at most `max_batch_size` (None: whole).

    [0, 1, 2, 5, 6] in batches of 2 gives [0, 1], [2], [5, 6].
    """
    runs: list[list[int]] = []
    for number in sorted(numbers):
        if runs and runs[-1][-1] + 1 == number:
            runs[-1].append(number)
        else:
            runs.append([number])
    for run in runs:
        size = max_batch_size or len(run)
        for start in range(0, len(run), size):
            yield run[start : start + size]


def task_config(cfg: DictConfig) -> DictConfig:
    """The config a job's task function sees: without Hydra's own node, as `run_job` passes it."""
    task_cfg = copy.deepcopy(cfg)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    return task_cfg


def one_by_one_reason(task_cfg: DictConfig) -> str | None:
    """Why a config's jobs run one by one through the launcher, or None if they train as a
    population. A config that fails before training runs one by one too: each job then fails
    with its error, as with the basic sweeper."""
    try:
        return fallback_reason(task_cfg)
    except ConfigError as error:
        return f"the config fails before training ({type(error).__name__})"
