"""Ctrl-C and SIGTERM: the first stops the run; more, while it ends, cannot leave it RUNNING.

SIGTERM (`kill`, a SLURM time limit) stops us as Ctrl-C does, with KeyboardInterrupt: the open
MLflow run ends KILLED and a sweep is summarised. A user pressing Ctrl-C twice, or a scheduler
sending SIGTERM again, would otherwise interrupt that ending half-way, and MLflow's exit hook
would then mark the run FINISHED. So only the first signal interrupts; later ones are noted and
ignored while the process ends (SIGKILL still stops it at once).

A database transaction is not interrupted half-way: a KeyboardInterrupt raised inside
SQLite's `executemany` leaves its connection holding the write lock, and every later write
(the runs ending KILLED) then fails with "database is locked". Inside `deferred()` the first
signal is noted, and raised when the block ends.

A stopped process leaves without the interpreter's last collections: walking TensorFlow's
objects as the interpreter shuts down took 1.5-3 s of a stop that must end within 3 s.
"""

import atexit
import gc
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_received: list[int] = []
_deferring: list[bool] = []  # one entry per open `deferred()` block


def install() -> None:
    """Handle SIGINT and SIGTERM in this (the main) process."""
    _received.clear()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, _stop)
    atexit.unregister(_exit_quickly)
    atexit.register(_exit_quickly)


def stopping() -> bool:
    """Whether a stop signal has arrived: the process is ending its runs as KILLED."""
    return bool(_received)


def first_signal() -> int:
    """The signal that stopped the process (SIGINT when none was received: a plain Ctrl-C)."""
    return _received[0] if _received else signal.SIGINT


def check() -> None:
    """Raise the stop now if a signal arrived and its KeyboardInterrupt was lost: a handler that
    raises inside a garbage-collection callback or a `__del__` only prints "Exception ignored".
    Long loops call it between steps, so such a stop still stops them."""
    if _received and not _deferring:
        raise KeyboardInterrupt


@contextmanager
def deferred() -> Iterator[None]:
    """Run the block whole: a first stop signal arriving inside it is raised when it ends."""
    received = len(_received)
    _deferring.append(True)
    try:
        yield
    finally:
        _deferring.pop()
    if not _deferring and received == 0 and _received:
        raise KeyboardInterrupt


def _exit_quickly() -> None:
    """At the exit of a stopped process, its objects out of the interpreter's shut-down
    collections (`gc.freeze`): memory the exit frees whole. Runs and files are ended by then."""
    if _received:
        gc.freeze()


def _stop(signal_number: int, frame: FrameType | None) -> None:
    _received.append(signal_number)
    if len(_received) == 1 and not _deferring:
        raise KeyboardInterrupt
    if len(_received) == 2:
        # os.write, not print: a signal handler may run in the middle of another print.
        os.write(2, b"stopping: ending the MLflow runs as KILLED (kill -9 stops at once)\n")
