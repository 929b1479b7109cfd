"""What a run is called and what it records of its config: names, params and the user's tags.

A single run is named by its overrides (`model=mlp dataset=xor`); a sweep's job by its swept
values only (`seed=3 lr=0.5`); a sweep's parent by what it sweeps (`seed x lr (40 jobs)`). What
tells runs apart comes first: the UI's Run Name column shows about 17 characters.
"""

import collections
import functools
import json
import math
import re
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from omegaconf import DictConfig, OmegaConf

from gatelab.config.checks import is_valid_tag
from gatelab.redaction import redact

# Short names of keys people sweep, for run names, legends and metric names (the one place
# where `lr` stands for `learning_rate`: the UI's columns are narrow).
KEY_ALIASES = {"optimizer.learning_rate": "lr"}
# How a preset is chosen: `+experiment=neuron_bias`.
EXPERIMENT_OVERRIDE = "+experiment="
# Settings that change how a run is reported or stored, not what it learns.
NOT_PARAMS = ("trainer.print_every", "trainer.jit_compile", "trainer.report", "tags")


def overrides_text(overrides: list[str]) -> str:
    """The overrides as Hydra lists them: tag `hydra.overrides`."""
    return redact(" ".join(overrides))


def single_run_name(overrides: list[str]) -> str:
    """A run alone is named by its overrides, a preset by its name: `neuron_bias seed=1`."""
    words = [
        override.removeprefix(EXPERIMENT_OVERRIDE)
        if override.startswith(EXPERIMENT_OVERRIDE)
        else override
        for override in overrides
    ]
    return redact(" ".join(words))


def short_key(key: str) -> str:
    """`optimizer.learning_rate` is `lr`, another key its last part (`trainer.epochs`: epochs)."""
    key = key.lstrip("+~")
    return KEY_ALIASES.get(key, key.rpartition(".")[2])


def short_keys(keys: list[str]) -> dict[str, str]:
    """Each key's short name, or the key itself where two keys would share one."""
    return dict(_short_keys(tuple(keys)))


@functools.lru_cache(maxsize=1024)
def _short_keys(keys: tuple[str, ...]) -> dict[str, str]:
    # Cached (not to be changed): every job of a sweep names the same keys.
    short = {key: short_key(key) for key in keys}
    counts = collections.Counter(short.values())
    return {key: key if counts[name] > 1 else name for key, name in short.items()}


def child_run_name(swept_values: dict[str, str]) -> str:
    """A sweep job's run name: its swept values only, `seed=3 lr=0.5`."""
    return _child_run_name(tuple(swept_values.items()))


@functools.lru_cache(maxsize=4096)
def _child_run_name(values: tuple[tuple[str, str], ...]) -> str:
    # Cached: a cell's name is asked for each of its jobs, several times over.
    names = _short_keys(tuple(key for key, _ in values))
    return redact(" ".join(f"{names[key]}={value}" for key, value in values))


def sweep_run_name(swept: list[str], fixed_overrides: list[str], jobs: int | None) -> str:
    """A sweep's parent: what it sweeps, `seed x lr (15 jobs)`, then what it fixes (not
    `sweep ...` first: every sweep's name would read the same in the UI's narrow column)."""
    names = short_keys(swept)
    parts = [" x ".join(names[key] for key in swept) or "nothing swept"]
    if jobs is not None:
        parts.append(f"({jobs} job{'s' if jobs != 1 else ''})")
    return redact(" ".join(parts + fixed_overrides))


def swept_keys(overrides: list[str]) -> list[str]:
    """The keys a multirun sweeps over, in command-line order: `seed=0,1` gives `seed`."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [override.key_or_group for override in parsed if override.is_sweep_override()]


def fixed_overrides(overrides: list[str]) -> list[str]:
    """The overrides of a multirun that every job shares."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [
        text
        for text, override in zip(overrides, parsed, strict=True)
        if not override.is_sweep_override()
    ]


def planned_jobs(overrides: list[str]) -> int | None:
    """How many jobs the basic sweeper makes of `overrides`; None when it cannot tell."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    sweeps = [override for override in parsed if override.is_sweep_override()]
    # A glob needs the config's options and an interval is for other sweepers (Optuna...).
    countable = (ValueType.CHOICE_SWEEP, ValueType.SIMPLE_CHOICE_SWEEP, ValueType.RANGE_SWEEP)
    if any(override.value_type not in countable for override in sweeps):
        return None
    return math.prod(len(list(override.sweep_string_iterator())) for override in sweeps)


def swept_values(overrides: list[str], keys: list[str]) -> dict[str, str]:
    """A job's value of each swept key, from its overrides, in the order of `keys`."""
    found = dict(map(_key_and_value, overrides))
    return {key: found[key] for key in keys if key in found}


# `key=integer` as Hydra's parser reads it: the key and the integer as written (`seed=42`).
_NAME = "[A-Za-z_][A-Za-z0-9_]*"
_KEY_EQUALS_INTEGER = re.compile(rf"({_NAME}(?:\.{_NAME})*)=(0|-?[1-9][0-9]*)")


@functools.lru_cache(maxsize=100_000)
def _key_and_value(override: str) -> tuple[str, str]:
    # Cached: the jobs of a big sweep repeat the same few overrides (`lr=0.1` in 1,000 of them),
    # and Hydra's parser takes about 1 ms for each. A seed is new in each job: read without it.
    plain = _KEY_EQUALS_INTEGER.fullmatch(override)
    if plain is not None:
        return plain[1], plain[2]
    (parsed,) = OverridesParser.create().parse_overrides([override])
    return parsed.key_or_group, parsed.get_value_element_as_str()


def config_params(cfg: DictConfig, resolve: bool = True) -> dict[str, str]:
    """The experiment's knobs as MLflow params: dotted keys; lists compact, as typed (`[2]`).

    Left out: Hydra's `hydra` node, every `_target_`, `tracking.*`, `NOT_PARAMS` and what is
    unset (None: an initializer's argument Keras's default fills).
    """
    tree = OmegaConf.to_container(cfg, resolve=resolve)
    tree.pop("hydra", None)
    return {
        key: str(compact_param(value))
        for key, value in flatten(tree).items()
        if not (
            key.rpartition(".")[2] == "_target_"
            or key.startswith("tracking.")
            or key in NOT_PARAMS
            or value is None
        )
    }


def compact_param(value: Any) -> Any:
    """A param as the UI shows it best: lists compact (`[2]`), strings without credentials."""
    if isinstance(value, list):
        return redact(json.dumps(value, separators=(",", ":")))
    return redact(value) if isinstance(value, str) else value


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config to dotted keys, such as `optimizer.learning_rate`."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def user_tags(tags: list[str]) -> dict[str, str]:
    """The config's `tags` as MLflow tags: `baseline` gives `baseline=true`, `team:ml` `team=ml`."""
    pairs = (tag.partition(":") for tag in tags)
    return {key.strip(): value.strip() if sep else "true" for key, sep, value in pairs}


def valid_tags(config: DictConfig) -> list[str]:
    """The config's `tags` that MLflow accepts (a failed job's config may hold others)."""
    tags = OmegaConf.select(config, "tags", default=[]) or []
    return [tag for tag in tags if isinstance(tag, str) and is_valid_tag(tag)]


def metric_key(text: str) -> str:
    """`text` with the characters MLflow refuses in a metric name (such as `=`) as `_`."""
    return re.sub(r"[^\w.\-/ :]", "_", text)
