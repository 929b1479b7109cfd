"""The vectorized sweeper: the basic sweeper's grammar, one population per structural combination.

`python src/train.py -m hydra/sweeper=vectorized seed='range(1000)' optimizer.learning_rate=0.1,1`
lists its jobs as the basic sweeper does (same order, same numbers). Jobs that differ only in
`seed`, `optimizer.learning_rate` or `optimizer.momentum` share one config composed by Hydra's
config loader and train together in `gatelab.vectorized.run_population`; each still gets its
folder (`.hydra/config.yaml`, `.hydra/overrides.yaml`) and its MLflow child run. Jobs the
population engine cannot train (another optimizer, a model with other layers, a Keras model
logged per child) run one by one through the configured launcher, exactly as without this
sweeper. The `mlflow_sweep` callback opens and summarises the parent run as in any sweep.

TensorFlow is imported only when a sweep runs: Hydra imports this module whenever it scans
its plugins.
"""

import copy
import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

log = logging.getLogger(__name__)

DEFAULT_SUBDIR = "${hydra.job.num}"


class VectorizedSweeper(Sweeper):
    def __init__(self, params: dict[str, str] | None = None):
        self.params = params or {}
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None
        self.timings: dict[str, float] = {}

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from gatelab import sweep, vectorized

        assert self.config is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(
            [*(f"{k}={v}" for k, v in self.params.items()), *arguments]
        )
        value_keys, typed_values = value_only(overrides, vectorized.VALUE_KEYS)
        # The basic sweeper's job list, so a job has the same number with either sweeper.
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        all_jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        set_on_command_line = {override.key_or_group for override in overrides}

        groups: OrderedDict[tuple[str, ...], list[int]] = OrderedDict()
        for number, job in enumerate(all_jobs):
            structural = tuple(item for item in job if item.split("=", 1)[0] not in value_keys)
            groups.setdefault(structural, []).append(number)

        # Compose every structural combination first: a config that cannot be composed stops
        # the sweep before any job runs, as the basic sweeper's check of its batch does.
        started = time.perf_counter()
        composed = {
            structural: self.hydra_context.config_loader.load_sweep_config(
                self.config, list(structural)
            )
            for structural in groups
        }
        self.timings["compose"] = time.perf_counter() - started
        log.info(
            "vectorized sweep: %d jobs in %d population(s), composed in %.2f s",
            len(all_jobs),
            len(groups),
            self.timings["compose"],
        )

        progress = vectorized.Progress()
        parent_run_id = sweep.parent_run_id(sweep_dir)
        losses: dict = {}
        returns: list[tuple[int, JobReturn]] = []
        for structural, numbers in groups.items():
            cfg = composed[structural]
            vectorized.apply_sweep_defaults(cfg, set_on_command_line)
            task_cfg = task_config(cfg)
            reason = self._fallback_reason(cfg, task_cfg)
            if reason is not None:
                log.info("%d job(s) run one by one: %s", len(numbers), reason)
                for number in numbers:
                    (result,) = self.launcher.launch([all_jobs[number]], initial_job_idx=number)
                    returns.append((number, result))
                continue
            jobs = [
                vectorized.Job(
                    number=number,
                    overrides=list(all_jobs[number]),
                    values={
                        key: typed_values[item]
                        for item in all_jobs[number]
                        if (key := item.split("=", 1)[0]) in value_keys
                    },
                    output_dir=sweep_dir / str(number),
                )
                for number in numbers
            ]
            started = time.perf_counter()
            outcomes = vectorized.run_population(
                task_cfg,
                jobs,
                choices=dict(cfg.hydra.runtime.choices),
                parent_run_id=parent_run_id,
                progress=progress,
                on_losses=losses.update,
            )
            self.timings["train and log"] = self.timings.get("train and log", 0.0) + (
                time.perf_counter() - started
            )
            started = time.perf_counter()
            JobFolders(cfg).write(jobs)
            self.timings["write folders"] = self.timings.get("write folders", 0.0) + (
                time.perf_counter() - started
            )
            returns += [(outcome.job.number, job_return(outcome, cfg)) for outcome in outcomes]
        progress.done()

        started = time.perf_counter()
        if parent_run_id is not None and losses:
            vectorized.log_losses(parent_run_id, losses, sweep_dir)
            open_sweep = sweep.open_sweep()
            if open_sweep is not None:
                open_sweep.known_losses.update(losses)
        uri = self.config.tracking.uri or _default_uri()
        vectorized.analyze_store(uri)
        self.timings["parent losses and ANALYZE"] = time.perf_counter() - started
        log.info(
            "vectorized sweep timings: %s",
            ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.timings.items()),
        )
        results = [result for _, result in sorted(returns, key=lambda pair: pair[0])]
        for result in results:
            # As the basic sweeper: a failed job's error is raised once every job has ended.
            _ = result.return_value
        return [results]

    def _fallback_reason(self, cfg: DictConfig, task_cfg: DictConfig) -> str | None:
        from gatelab import vectorized
        from gatelab.config import ConfigError

        # Job folders are written here as `hydra.sweep.dir/<job number>`, Hydra's default.
        subdir = OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["subdir"]
        if subdir != DEFAULT_SUBDIR:
            return f"hydra.sweep.subdir={subdir}"
        try:
            return vectorized.fallback_reason(task_cfg)
        except ConfigError as error:
            # The config itself is bad: each job fails with that error, as with the basic sweeper.
            return f"the config fails before training ({type(error).__name__})"


def task_config(cfg: DictConfig) -> DictConfig:
    """The config a job's task function sees: without Hydra's own node, as `run_job` passes it."""
    task_cfg = copy.deepcopy(cfg)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    return task_cfg


def value_only(overrides: list[Override], keys: tuple[str, ...]) -> tuple[set[str], dict[str, Any]]:
    """The plain `key=value` overrides of `keys`, and each job item (`seed=3`) as a typed value."""
    value_keys = set()
    typed: dict[str, Any] = {}
    for override in overrides:
        if (
            override.type != OverrideType.CHANGE
            or override.package
            or override.key_or_group not in keys
        ):
            continue
        key = override.get_key_element()
        value_keys.add(key)
        if override.is_sweep_override():
            values = zip(override.sweep_string_iterator(), override.sweep_iterator(), strict=True)
        else:
            values = [(override.get_value_element_as_str(), override.value())]
        for text, value in values:
            typed[f"{key}={text}"] = value
    return value_keys, typed


def job_return(outcome, cfg: DictConfig) -> JobReturn:
    """Hydra's record of a job that ran in a population."""
    if outcome.error is not None:
        status, value = JobStatus.FAILED, outcome.error
    else:
        status, value = JobStatus.COMPLETED, outcome.loss
    return JobReturn(
        overrides=outcome.job.overrides,
        working_dir=str(outcome.job.output_dir),
        task_name=cfg.hydra.job.name,
        status=status,
        _return_value=value,
    )


class JobFolders:
    """Each job's `.hydra/config.yaml` and `overrides.yaml`, from one rendering of the config."""

    def __init__(self, cfg: DictConfig):
        from gatelab.vectorized import VALUE_KEYS

        tree = OmegaConf.to_container(cfg, resolve=False)
        tree.pop("hydra", None)
        self.markers = {}
        for index, key in enumerate(VALUE_KEYS):
            *parents, leaf = key.split(".")
            node = tree
            for parent in parents:
                node = node.get(parent, {}) if isinstance(node, dict) else {}
            if isinstance(node, dict) and leaf in node:
                marker = f"GATELAB_VALUE_{index}_MARKER"
                self.markers[key] = (marker, node[leaf])
                node[leaf] = marker
        self.template = OmegaConf.to_yaml(OmegaConf.create(tree))
        self.scalars: dict[str, str] = {}
        self.lines: dict[str, str] = {}

    def write(self, jobs) -> None:
        for job in jobs:
            folder = job.output_dir / ".hydra"
            folder.mkdir(parents=True, exist_ok=True)
            text = self.template
            for key, (marker, default) in self.markers.items():
                value = job.values.get(key, default)
                if isinstance(default, float) and isinstance(value, int):
                    value = float(value)  # as the schema's float field holds it
                text = text.replace(marker, self._scalar(value))
            (folder / "config.yaml").write_text(text)
            (folder / "overrides.yaml").write_text("".join(map(self._line, job.overrides)))

    def _scalar(self, value: Any) -> str:
        key = repr(value)
        if key not in self.scalars:
            self.scalars[key] = OmegaConf.to_yaml({"v": value})[len("v: ") :].rstrip("\n")
        return self.scalars[key]

    def _line(self, override: str) -> str:
        if override not in self.lines:
            self.lines[override] = OmegaConf.to_yaml([override])
        return self.lines[override]


def _default_uri() -> str:
    import mlflow

    return mlflow.get_tracking_uri()
