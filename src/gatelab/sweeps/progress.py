"""A sweep's progress: one line on a terminal, rewritten in place; a log line now and then in logs
(a job on SLURM, output piped to a file), so a long sweep is never silent."""

import logging
import sys
import time
from typing import TextIO

log = logging.getLogger(__name__)

# On a terminal the line is rewritten at most this often (s); in a log, a line this often.
TERMINAL_EVERY = 0.1
LOG_EVERY = 10.0


class Progress:
    """Where a sweep is: on a terminal, rewritten in place; otherwise logged every `LOG_EVERY` s."""

    def __init__(self, stream: TextIO | None = None, log_every: float = LOG_EVERY):
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()
        self.every = TERMINAL_EVERY if self.terminal else log_every
        self.last = time.perf_counter()

    def show(self, text: str, force: bool = False) -> None:
        now = time.perf_counter()
        if now - self.last < self.every and not force:
            return
        self.last = now
        if self.terminal:
            self.stream.write(f"\r\033[K{text}")
            self.stream.flush()
        else:
            log.info("%s", text)

    def done(self) -> None:
        if self.terminal:
            self.stream.write("\r\033[K")
            self.stream.flush()
