"""The command line's error contract: a bad config value is one line on stderr and exit 2."""

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import mlflow
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from hydra.types import RunMode
from mlflow.entities import RunStatus
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from gatelab import stopping, sweep, tracking
from gatelab.config import ConfigError, shorten, unknown_key_message

EXIT_FAILURE = 1
EXIT_CONFIG_ERROR = 2
CONFIG_ERRORS = (
    ConfigError,
    ConfigCompositionException,
    OverrideParseException,
    OmegaConfBaseException,
)


def run_reporting_config_errors(hydra_main: Callable[[], Any]) -> None:
    """Run a `@hydra.main` function, reporting a config error as one line instead of a report."""
    # Hydra prints its own multi-line report unless HYDRA_FULL_ERROR is set, in which case it
    # re-raises: we set it so the error reaches us. Other errors still end in their traceback;
    # set HYDRA_FULL_ERROR=1 yourself to see Hydra's own output.
    report_config_errors = os.environ.get("HYDRA_FULL_ERROR") != "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    stopping.install()
    # Hydra logs the overrides, `tracking.uri=http://user:password@...` included.
    tracking.redact_output()
    try:
        # Before Hydra: it instantiates its own `hydra.callbacks` while composing.
        refuse_targets(sys.argv[1:])
        try:
            hydra_main()
        except KeyboardInterrupt:
            # A run stopped before its own handler could end it (as it started, say) ends
            # KILLED here, not FINISHED by MLflow's exit hook.
            while mlflow.active_run() is not None:
                mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
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


def refuse_targets(arguments: list[str]) -> None:
    """Refuse a `_target_` set or added on the command line: it names code Hydra would run."""
    try:
        overrides = OverridesParser.create().parse_overrides(
            get_args_parser().parse_known_args(arguments)[0].overrides
        )
    except Exception:
        return  # Hydra reports a malformed override itself, and one_line words it.
    for override in overrides:
        key = override.key_or_group
        if key.split(".")[-1] == "_target_" or any(map(_has_target, _values(override))):
            raise ConfigError(
                f"{shorten(override.input_line or key)} is not allowed: a _target_ names code to "
                "run and cannot be set from the command line; choose a group option instead "
                "(such as optimizer=adam)"
            )


def _values(override: Override) -> list[Any]:
    if not override.is_sweep_override():
        return [override.value()]
    try:
        return list(override.sweep_iterator())
    except HydraException:
        return []  # an interval or a glob of options: numbers and names, never a dict


def _has_target(value: Any) -> bool:
    if isinstance(value, dict):
        return "_target_" in value or any(map(_has_target, value.values()))
    if isinstance(value, list):
        return any(map(_has_target, value))
    return False


def exit_with(error: Exception, status: int | None = None) -> NoReturn:
    """Print the error's one line on stderr, whatever its characters or stderr's encoding, and
    exit with `status` (a config error's, 2, unless told)."""
    try:
        line = f"error: {tracking.redact(one_line(error))}"
    except Exception:  # The reporter must never hide the error behind one of its own.
        line = f"error: {type(error).__name__}: {error}".splitlines()[0]
    try:
        print(line, file=sys.stderr, flush=True)
    except Exception:  # No usable sys.stderr, or an encoding that cannot write the line.
        os.write(2, line.encode("ascii", "backslashreplace") + b"\n")
    sys.exit(EXIT_CONFIG_ERROR if status is None else status)


def one_line(error: Exception) -> str:
    """A config error as one line that names the field, the value given and what is allowed."""
    if isinstance(error, OverrideParseException):
        # Hydra's override grammar takes only ASCII letters outside quotes.
        override = str(error).splitlines()[0].partition(": ")[2] or str(error).splitlines()[0]
        return (
            f"{shorten(override)} is not a valid override: quote a value with spaces or "
            f"non-ASCII letters, e.g. key='value' (Hydra's override grammar)"
        )
    if isinstance(error, MissingConfigException) and error.options is not None:
        group, _, option = (error.missing_cfg_file or "").rpartition("/")
        options = [name for name in error.options if not name.startswith("base_")]
        return f"{group}={option} is not an option of '{group}': choose one of {', '.join(options)}"
    cause = error if isinstance(error, OmegaConfBaseException) else error.__cause__
    if isinstance(cause, ConfigKeyError | ConfigAttributeError):
        parent = cause.parent_node
        keys = parent if isinstance(parent, DictConfig) else []
        # `_target_` and the `hydra` node are there for Hydra, not for the user to set.
        fields = [str(key) for key in keys if not str(key).startswith("_") and key != "hydra"]
        return unknown_key_message(cause.full_key, fields)
    if isinstance(cause, OmegaConfBaseException):
        # Some errors (a missing interpolation) carry no message of their own.
        reason = (cause.msg or str(cause)).splitlines()[0]
        return f"{cause.full_key}={shorten(repr(cause.value))} is not allowed: {reason}"
    return (str(error).splitlines() or [type(error).__name__])[0]
