"""The command line's error contract: a bad config value is one line on stderr and exit 2."""

import os
import sys
from collections.abc import Callable
from typing import Any

from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from gatelab.config import ConfigError

EXIT_CONFIG_ERROR = 2


def run_reporting_config_errors(hydra_main: Callable[[], Any]) -> None:
    """Run a `@hydra.main` function, reporting a config error as one line instead of a report.

    Hydra prints its own multi-line report unless HYDRA_FULL_ERROR is set, in which case it
    re-raises; we set it so the error reaches us. Errors that are not about the config still
    end in their full traceback. Set HYDRA_FULL_ERROR=1 yourself to see Hydra's own output.
    """
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        hydra_main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        hydra_main()
    except (ConfigError, ConfigCompositionException, OmegaConfBaseException) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)


def one_line(error: Exception) -> str:
    """A config error as one line that names the field, the value given and what is allowed."""
    if isinstance(error, MissingConfigException) and error.options is not None:
        group, _, option = (error.missing_cfg_file or "").rpartition("/")
        options = [name for name in error.options if not name.startswith("base_")]
        return f"{group}={option} is not an option of '{group}': choose one of {', '.join(options)}"
    cause = error if isinstance(error, OmegaConfBaseException) else error.__cause__
    if isinstance(cause, ConfigKeyError) and isinstance(cause.parent_node, DictConfig):
        fields = ", ".join(str(key) for key in cause.parent_node.keys())
        return f"{cause.full_key} is not a field of this config: allowed fields are {fields}"
    if isinstance(cause, OmegaConfBaseException):
        return f"{cause.full_key}={cause.value!r} is not allowed: {cause.msg.splitlines()[0]}"
    return str(error).splitlines()[0]
