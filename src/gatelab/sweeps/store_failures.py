"""A store that fails as a sweep ends: how to tell (a full disk, in the words each store reports
it), the reason at its root, and the one-line error that says how the sweep's runs ended."""

import errno

from mlflow.exceptions import MlflowException
from sqlalchemy.exc import SQLAlchemyError


class SweepEndError(RuntimeError):
    """A store that could not record how a sweep ended, or is full: the message is one line
    saying how its runs ended (or that they stay RUNNING) and what to do."""


# What a store that cannot be written raises: MLflow's errors (its SQL store's wrapped), a file
# store's or an SQL store's own.
STORE_FAILURES = (MlflowException, SQLAlchemyError, OSError)
# The words a full disk or store is reported in: SQLite's SQLITE_FULL, PostgreSQL's and the
# operating system's ENOSPC (through a tracking server, only the words reach us).
FULL_WORDS = ("database or disk is full", "No space left on device", "could not extend file")


def disk_full(error: BaseException | None) -> bool:
    """Whether `error`, or an error it was raised from, says a disk or store is full."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(words in str(error) for words in FULL_WORDS):
            return True
        error = error.__cause__ or error.__context__
    return False


def store_reason(error: BaseException | None) -> str:
    """What a store's error says at its root, in a few words: the database driver's message
    under MLflow's and SQLAlchemy's wrappings (`database or disk is full`)."""
    if error is None:
        return "no reason given"
    while error.__cause__ is not None:
        error = error.__cause__
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
