"""Hydra apps that are not gatelab's, under a gatelab sweeper: Hydra's basic sweeper runs them.

gatelab's sweepers are Hydra plugins, so they are offered to every Hydra app installed beside
gatelab; `hydra/sweeper=vectorized` or `=search` under an app whose config is not gatelab's runs
that app's jobs as `hydra/sweeper=basic` would, through its launcher, instead of failing on
gatelab's keys. Only this module and gatelab's config schema are imported then.
"""

import logging
from dataclasses import fields

from hydra._internal.core_plugins import basic_sweeper
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig

from gatelab.config.schemas import Config

log = logging.getLogger(__name__)

# gatelab's top-level keys: every field of its config's schema.
GATELAB_KEYS = tuple(field.name for field in fields(Config))


def missing_gatelab_keys(config: DictConfig) -> list[str]:
    """gatelab's top-level keys that `config` (an app's, as a sweeper gets it) lacks: none if
    the config is gatelab's."""
    present = set(config.keys())
    return [key for key in GATELAB_KEYS if key not in present]


def basic_sweeper_unless_gatelab(
    config: DictConfig,
    sweeper: str,
    params: dict[str, str] | None,
    max_batch_size: int | None = None,
) -> Sweeper | None:
    """Hydra's basic sweeper with these settings if `config` is not gatelab's, else None.

    Args:
        sweeper: the gatelab sweeper chosen (`vectorized`), for the line that says so.
    """
    missing = missing_gatelab_keys(config)
    if not missing:
        return None
    log.info(
        "hydra/sweeper=%s: this app's config is not gatelab's (no %s); its jobs run as with "
        "hydra/sweeper=basic",
        sweeper,
        ", ".join(missing),
    )
    # Looked up now: Hydra's plugin scan executes its plugin modules again (each time its
    # singletons are made anew, as in tests), and the class's `super()` wants today's class.
    return basic_sweeper.BasicSweeper(max_batch_size=max_batch_size, params=params)
