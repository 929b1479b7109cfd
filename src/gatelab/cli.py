"""The command line's error contract: a bad config value is one line on stderr and exit 2."""

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from hydra.errors import ConfigCompositionException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from gatelab import sweep, tracking
from gatelab.config import ConfigError

EXIT_CONFIG_ERROR = 2
CONFIG_ERRORS = (ConfigError, ConfigCompositionException, OmegaConfBaseException)


def run_reporting_config_errors(hydra_main: Callable[[], Any]) -> None:
    """Run a `@hydra.main` function, reporting a config error as one line instead of a report."""
    # Hydra prints its own multi-line report unless HYDRA_FULL_ERROR is set, in which case it
    # re-raises: we set it so the error reaches us. Other errors still end in their traceback;
    # set HYDRA_FULL_ERROR=1 yourself to see Hydra's own output.
    report_config_errors = os.environ.get("HYDRA_FULL_ERROR") != "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    # SIGTERM (`kill`, a SLURM time limit) stops us as Ctrl-C does: the open MLflow run ends
    # KILLED and the sweep is summarised, instead of both being left RUNNING.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # Hydra logs the overrides, `tracking.uri=http://user:password@...` included.
    tracking.redact_output()
    try:
        try:
            hydra_main()
        except KeyboardInterrupt:
            sweep.finish_open_sweeps(interrupted=True)
            raise
        finally:
            # Hydra skips the callback's end when a job raised; summarise and close the sweep
            # here, before the error line, so the summary comes first.
            sweep.finish_open_sweeps()
    except CONFIG_ERRORS as error:
        if not report_config_errors:
            raise
        exit_with(error)


@contextmanager
def config_errors_exit(run_mode: RunMode) -> Iterator[None]:
    """In a single run, exit on a config error before Hydra adds its own line about the job."""
    try:
        yield
    except ConfigError as error:
        # In a multirun Hydra records the job as failed and goes on with the others.
        if run_mode == RunMode.MULTIRUN:
            raise
        exit_with(error)


def exit_with(error: Exception) -> NoReturn:
    print(f"error: {tracking.redact(one_line(error))}", file=sys.stderr)
    sys.exit(EXIT_CONFIG_ERROR)


def one_line(error: Exception) -> str:
    """A config error as one line that names the field, the value given and what is allowed."""
    if isinstance(error, MissingConfigException) and error.options is not None:
        group, _, option = (error.missing_cfg_file or "").rpartition("/")
        options = [name for name in error.options if not name.startswith("base_")]
        return f"{group}={option} is not an option of '{group}': choose one of {', '.join(options)}"
    cause = error if isinstance(error, OmegaConfBaseException) else error.__cause__
    if isinstance(cause, ConfigKeyError | ConfigAttributeError):
        parent = cause.parent_node
        keys = parent if isinstance(parent, DictConfig) else []
        # `_target_` and the `hydra` node are there for Hydra, not for the user to set.
        fields = ", ".join(
            str(key) for key in keys if not str(key).startswith("_") and key != "hydra"
        )
        section = cause.full_key.rpartition(".")[0] or "the config"
        return f"{cause.full_key} is not a field of {section}: allowed fields are {fields}"
    if isinstance(cause, OmegaConfBaseException):
        # Some errors (a missing interpolation) carry no message of their own.
        reason = (cause.msg or str(cause)).splitlines()[0]
        return f"{cause.full_key}={cause.value!r} is not allowed: {reason}"
    return str(error).splitlines()[0]
