"""Credentials out of everything gatelab prints or writes: `user:password@` and `?token=` as ***.

A tracking URI may carry a password (`http://alice:secret@host`, `postgresql://...`), and
Hydra, MLflow and Python print it in several places: the overrides Hydra logs, MLflow's "View
run at" links, tracebacks, warnings and the `.hydra/*.yaml` files of every job.
"""

import logging
import os
import re
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

# `scheme://user:password@host` and secret-looking query values (`?token=...`, `&password=...`),
# but not the MLflow UI's `viewStateShareKey`, the name of a view (a run id), which links need.
# Greedy up to the last `@` of the authority: a password may hold an unescaped `@`. Hydra
# escapes `:` in the overrides it logs and in `override_dirname` (`http\://user\:pw@`).
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*\\*://)[^/?#\s'\"]*@")
_SECRET_QUERY = re.compile(
    r"([?&;](?!viewStateShareKey=)[^=&\s'\"]*(?:token|password|passwd|pwd|secret|key|auth|signature|sig|credential)"
    r"[^=&\s'\"]*=)[^&\s'\",]*",
    re.IGNORECASE,
)
REDACTED = "***"


def redact(text: str) -> str:
    """`text` with the credentials of any URI in it (`user:password@`, `?token=`) as ***."""
    return _SECRET_QUERY.sub(rf"\g<1>{REDACTED}", _USERINFO.sub(rf"\g<1>{REDACTED}@", text))


def redact_files(paths: list[Path]) -> None:
    """Rewrite files holding a credential (Hydra's `.hydra/*.yaml`, `multirun.yaml`) without it."""
    for path in paths:
        if not path.is_file():
            continue
        text = path.read_text()
        if redact(text) != text:
            # Renamed into place: parallel jobs rewrite the same `multirun.yaml`.
            new = path.with_name(f".{path.name}.{os.getpid()}")
            new.write_text(redact(text))
            os.replace(new, path)


def redact_output() -> None:
    """Redact log records, warnings and tracebacks of this process: Hydra prints the overrides."""
    global _output_redacted
    if _output_redacted:
        return
    _output_redacted = True
    make_record = logging.getLogRecordFactory()

    def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return record
        record.msg, record.args = redact(message), None
        if record.exc_info:
            trace = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = redact(trace.rstrip("\n"))
        return record

    logging.setLogRecordFactory(redacted_record)
    format_warning = warnings.formatwarning
    warnings.formatwarning = lambda *args, **kwargs: redact(format_warning(*args, **kwargs))

    def excepthook(kind: type[BaseException], error: BaseException, trace: Any) -> None:
        sys.stderr.write(redact("".join(traceback.format_exception(kind, error, trace))))

    sys.excepthook = excepthook
    # MLflow prints a link to each run with the server's address as given, credentials included.
    sys.stdout, sys.stderr = _RedactingStream(sys.stdout), _RedactingStream(sys.stderr)


_output_redacted = False


class _RedactingStream:
    """A console stream that redacts what is written to it."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(redact(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
