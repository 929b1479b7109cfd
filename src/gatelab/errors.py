"""The errors gatelab raises for its user, and each error as the one line the user reads.

The bottom layer: every other module may raise these; only `gatelab.cli` turns them into an exit.
"""

import difflib

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException


class ConfigError(ValueError):
    """A value training cannot use; the message is one line: field, value, what is allowed."""


class StoreError(ConfigError):
    """The tracking store cannot be used; the message is one line naming it and what to do."""


class SweepNotStarted(BaseException):  # noqa: N818 (a stop, not an error to catch by `except Exception`)
    """A sweep that could not start: stop the whole command with its cause.

    A BaseException, because Hydra turns an `Exception` raised in a callback's
    `on_multirun_start` into a warning and launches the jobs anyway, parentless.
    """

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


# What the command line reports as a config error: one line, exit 2.
CONFIG_ERRORS = (
    ConfigError,
    ConfigCompositionException,
    OverrideParseException,
    OmegaConfBaseException,
)


def shorten(text: str, limit: int = 120) -> str:
    """A value as given, cut to fit on one line of an error message."""
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text):,} characters)"


def unknown_key_message(full_key: str, allowed: list[str]) -> str:
    """One line for a key no schema has: the nearest valid key first, then all of them."""
    section, _, key = full_key.rpartition(".")
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean {section + '.' if section else ''}{close[0]}? " if close else ""
    return (
        f"{full_key} is not a field of {section or 'the config'}: "
        f"{hint}allowed fields are {', '.join(allowed)}"
    )


def one_line(error: BaseException) -> str:
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
