"""A sweep's progress: one line on a terminal, rewritten in place; a log line now and then in logs
(a job on SLURM, output piped to a file), so a long sweep is never silent."""

import logging
import sys
import threading
import time
from typing import TextIO

log = logging.getLogger(__name__)

# On a terminal the line is rewritten at most this often (s); in a log, a line this often.
TERMINAL_EVERY = 0.1
LOG_EVERY = 10.0


class Progress:
    """Where a sweep is: on a terminal, rewritten in place; otherwise logged every `LOG_EVERY` s.

    A line has parts, shown side by side, each the latest text shown for it: a population's
    training and the writing of the children of the group of members it trained before
    (`sweeps.vectorized.population`), told from two threads.
    """

    def __init__(self, stream: TextIO | None = None, log_every: float = LOG_EVERY):
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()
        self.every = TERMINAL_EVERY if self.terminal else log_every
        self.last = time.perf_counter()
        self.parts: dict[str, str] = {}
        self.lock = threading.Lock()

    def show(self, text: str, force: bool = False, part: str = "") -> None:
        with self.lock:
            self.parts[part] = text
            now = time.perf_counter()
            if now - self.last < self.every and not force:
                return
            self.last = now
            line = "; ".join(self.parts.values())
            if self.terminal:
                self.stream.write(f"\r\033[K{line}")
                self.stream.flush()
            else:
                log.info("%s", line)

    def forget(self, part: str) -> None:
        """Show `part` no more (its work has ended)."""
        with self.lock:
            self.parts.pop(part, None)

    def done(self) -> None:
        with self.lock:
            self.parts.clear()
        if self.terminal:
            self.stream.write("\r\033[K")
            self.stream.flush()
