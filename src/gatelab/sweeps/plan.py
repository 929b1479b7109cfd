"""A vectorized sweep's plan: its jobs (the basic sweeper's list), grouped into populations, with
a bound on their number and an estimate of what they cost, said before anything trains."""

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
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
        groups: job numbers by their structural overrides (one population each).
        value_keys: the swept keys members of a population may differ in.
        typed_values: each `key=value` item of `value_keys` as its typed value.
        set_on_command_line: every key the command line sets.
    """

    jobs: list[list[str]]
    groups: "OrderedDict[tuple[str, ...], list[int]]"
    value_keys: set[str]
    typed_values: dict[str, Any]
    set_on_command_line: set[str]

    def values(self, number: int) -> dict[str, Any]:
        """Job `number`'s values of the value keys, typed."""
        return {
            key: self.typed_values[item]
            for item in self.jobs[number]
            if (key := item.split("=", 1)[0]) in self.value_keys
        }


def plan_of(overrides: list[Override], keys: tuple[str, ...], max_jobs: int) -> Plan:
    """The jobs of `overrides`, grouped by all but `keys`; ConfigError past `max_jobs`."""
    value_keys, typed_values = value_only(overrides, keys)
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
        typed_values=typed_values,
        set_on_command_line={override.key_or_group for override in overrides},
    )


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


def estimate(
    plan: Plan, composed: dict[tuple[str, ...], DictConfig], skipped: int, store: ChildStore
) -> str:
    """What the sweep will take: jobs, populations, the largest one's memory, logging time (by
    the writer of `store`, at its cost a child)."""
    to_run = len(plan.jobs) - skipped
    largest = 0
    for structural, numbers in plan.groups.items():
        cfg = composed[structural]
        try:
            model, dataset = OmegaConf.to_object(cfg.model), OmegaConf.to_object(cfg.dataset)
            weights = model.parameter_count(dataset.n_inputs)
        except Exception:  # a config that fails its jobs one by one: it holds no population
            continue
        largest = max(largest, len(numbers) * weights)
    skipped_text = f" ({skipped} finished earlier, skipped)" if skipped else ""
    return (
        f"vectorized sweep: {len(plan.jobs)} jobs{skipped_text} in {len(plan.groups)} "
        f"population(s); the largest holds {largest:,} weights, about "
        f"{largest * 4 * COPIES / 1e6:,.1f} MB; logging {to_run} child runs "
        f"({store.name}) takes about {to_run * store.seconds_per_child:,.0f} s on 2 cores, "
        "plus training"
    )
