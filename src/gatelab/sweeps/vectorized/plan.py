"""A vectorized sweep's plan: its jobs (the basic sweeper's list), grouped into populations, with
a bound on their number and an estimate of what they cost, said before anything trains.

A job's values come from its own overrides, the strings Hydra's basic sweeper lists for it
(`seed=3`, `optimizer.learning_rate='0.5'`), parsed by Hydra's grammar and applied to its
population's config as Hydra's config loader applies them to a job's: whatever the sweep's
grammar (shuffle, sort, quoted values), a job trains the values its labels name.
"""

import copy
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, OmegaConf

from gatelab.errors import ConfigError
from gatelab.tracking.children import ChildStore, ClientChildStore

# The most jobs a vectorized sweep runs unless `hydra.sweeper.max_jobs` says more: at the
# measured cost of a child run, 100,000 jobs log for about half an hour on 2 cores.
MAX_JOBS = 100_000
# A child run's logging time through the slower writer, MLflow's client: what the bound on jobs
# counts on, whatever the store (each store's own in `tracking.children`).
CHILD_SECONDS = ClientChildStore.seconds_per_child
# A member holds its weights about this many times over: weights, velocities, gradients, outputs.
COPIES = 4


@dataclass(frozen=True)
class Plan:
    """A sweep's jobs, as `key=value` overrides in the basic sweeper's order, by population.

    Args:
        jobs: each job's overrides, as Hydra's basic sweeper lists them.
        groups: job numbers by their structural overrides (one population each).
        value_keys: the swept keys members of a population may differ in.
        set_on_command_line: every key the command line sets.
    """

    jobs: list[list[str]]
    groups: "OrderedDict[tuple[str, ...], list[int]]"
    value_keys: set[str]
    set_on_command_line: set[str]
    # Each distinct override of a value key, parsed once: 10,000 jobs of 1,000 seeds x 10
    # learning rates have 1,010.
    parsed: dict[str, Override] = field(default_factory=dict, repr=False, compare=False)
    parser: OverridesParser = field(
        default_factory=OverridesParser.create, repr=False, compare=False
    )

    def value_items(self, number: int) -> list[str]:
        """Job `number`'s overrides of the value keys, as Hydra lists them (`seed=3`)."""
        return [item for item in self.jobs[number] if item.split("=", 1)[0] in self.value_keys]

    def override(self, item: str) -> Override:
        """`item` as Hydra's override parser reads it, parsed once per distinct item."""
        if item not in self.parsed:
            (self.parsed[item],) = self.parser.parse_overrides([item])
        return self.parsed[item]


class JobValues:
    """Jobs' values of their plan's value keys, as a population's composed config types them.

    A job's value is its own override applied to `cfg` as Hydra's config loader applies it to
    the job's config, then read back: `seed='1'` is the int 1 in an int field, as the basic
    sweeper's job sees it. Each distinct override is applied once. An override the config
    cannot take (`seed=abc`) raises Hydra's ConfigCompositionException, as composing the job
    does in the basic sweeper, before any job runs.
    """

    def __init__(self, plan: Plan, cfg: DictConfig):
        self.plan = plan
        self.scratch = copy.deepcopy(cfg)
        self.typed: dict[str, Any] = {}

    def of(self, number: int) -> dict[str, Any]:
        """Job `number`'s values by key (`{"seed": 3}`), only the keys its overrides set."""
        return {item.split("=", 1)[0]: self._typed(item) for item in self.plan.value_items(number)}

    def _typed(self, item: str) -> Any:
        if item not in self.typed:
            override = self.plan.override(item)
            ConfigLoaderImpl._apply_overrides_to_config([override], self.scratch)
            self.typed[item] = OmegaConf.select(self.scratch, override.key_or_group)
        return self.typed[item]


def plan_of(overrides: list[Override], keys: tuple[str, ...], max_jobs: int) -> Plan:
    """The jobs of `overrides`, grouped by all but `keys`; ConfigError past `max_jobs`."""
    value_keys = value_only(overrides, keys)
    jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
    if len(jobs) > max_jobs:
        raise ConfigError(
            f"hydra.sweeper.max_jobs={max_jobs:,}: this sweep has {len(jobs):,} jobs; at about "
            f"{1000 * CHILD_SECONDS:g} ms a child run they log for "
            f"{len(jobs) * CHILD_SECONDS / 60:,.0f} minutes. Sweep fewer values, or allow them "
            f"with hydra.sweeper.max_jobs={len(jobs)}"
        )
    groups: OrderedDict[tuple[str, ...], list[int]] = OrderedDict()
    for number, job in enumerate(jobs):
        structural = tuple(item for item in job if item.split("=", 1)[0] not in value_keys)
        groups.setdefault(structural, []).append(number)
    return Plan(
        jobs=jobs,
        groups=groups,
        value_keys=value_keys,
        set_on_command_line={override.key_or_group for override in overrides},
    )


def value_only(overrides: list[Override], keys: tuple[str, ...]) -> set[str]:
    """The keys of `keys` the overrides change plainly (`seed=...`, not `+seed=` or a group)."""
    return {
        override.get_key_element()
        for override in overrides
        if override.type == OverrideType.CHANGE
        and not override.package
        and override.key_or_group in keys
    }


def estimate(
    plan: Plan,
    composed: dict[tuple[str, ...], DictConfig],
    skipped: int,
    store: ChildStore,
    n_shards: int = 1,
    launcher: str = "basic",
) -> str:
    """What the sweep will take: jobs, populations, the largest one's memory, logging time (by
    the writer of `store`, at its cost a child); with `n_shards` above 1, what a shard (a job of
    `hydra/launcher=<launcher>`) holds and logs."""
    to_run = len(plan.jobs) - skipped
    largest = shard_jobs = shard_weights = 0
    for structural, numbers in plan.groups.items():
        cfg = composed[structural]
        try:
            model, dataset = OmegaConf.to_object(cfg.model), OmegaConf.to_object(cfg.dataset)
            weights = model.parameter_count(dataset.n_inputs)
        except Exception:  # a config that fails its jobs one by one: it holds no population
            continue
        largest = max(largest, len(numbers) * weights)
        in_shard = -(-len(numbers) // n_shards)  # its largest shard's jobs, rounded up
        shard_jobs = max(shard_jobs, in_shard)
        shard_weights = max(shard_weights, in_shard * weights)
    skipped_text = f" ({skipped} finished earlier, skipped)" if skipped else ""
    text = (
        f"vectorized sweep: {len(plan.jobs)} jobs{skipped_text} in {len(plan.groups)} "
        f"population(s); the largest holds {largest:,} weights, about "
        f"{largest * 4 * COPIES / 1e6:,.1f} MB; logging {to_run} child runs "
        f"({store.name}) takes about {to_run * store.seconds_per_child:,.0f} s on 2 cores, "
        "plus training"
    )
    if n_shards == 1:
        return text
    return (
        f"{text}; in {n_shards} shards a population, each a job of hydra/launcher={launcher}: "
        f"a shard holds at most {shard_jobs} jobs, {shard_weights:,} weights, about "
        f"{shard_weights * 4 * COPIES / 1e6:,.1f} MB, and logs them in about "
        f"{shard_jobs * store.seconds_per_child:,.0f} s, plus its start (about 5 s) and training"
    )
