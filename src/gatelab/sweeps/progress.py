"""A sweep's progress as one line on a terminal, rewritten in place."""

import sys
import time
from typing import TextIO


class Progress:
    """One line on a terminal, rewritten in place (at most 10 times a second); silent in logs."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.last = 0.0

    def show(self, text: str, force: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.1 and not force):
            return
        self.last = now
        self.stream.write(f"\r\033[K{text}")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()
