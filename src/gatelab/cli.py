"""The command line's error contract, and the only place that decides an exit status.

A bad config value or store is one line on stderr and exit 2; a sweep that cannot start, one
line and exit 1; a stop by Ctrl-C or SIGTERM, one line and 130 or 143. Library code raises; this
module reports.
"""

import errno
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import mlflow
from hydra.types import RunMode
from mlflow.exceptions import MlflowException

from gatelab import stopping
from gatelab.config.checks import refuse_targets
from gatelab.errors import CONFIG_ERRORS, ConfigError, SweepNotStarted, one_line
from gatelab.redaction import redact, redact_output
from gatelab.sweeps.store_failures import SweepEndError, disk_full, store_reason
from gatelab.sweeps.sweep_run import finish_open_sweeps
from gatelab.tracking.schema import schema_error
from gatelab.tracking.statuses import KILLED

EXIT_FAILURE = 1
EXIT_CONFIG_ERROR = 2


def run_reporting_config_errors(hydra_main: Callable[[], Any]) -> None:
    """Run a `@hydra.main` function, reporting a config error as one line instead of a report."""
    # Hydra prints its own multi-line report unless HYDRA_FULL_ERROR is set, in which case it
    # re-raises: we set it so the error reaches us. Other errors still end in their traceback;
    # set HYDRA_FULL_ERROR=1 yourself to see Hydra's own output.
    report_config_errors = os.environ.get("HYDRA_FULL_ERROR") != "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    stopping.install()
    # Hydra logs the overrides, `tracking.uri=http://user:password@...` included.
    redact_output()
    quiet_libraries()
    # urllib3 logs each retry of a tracking server's request; MLflow reports the request that
    # fails in the end, and `environment_error` makes that one line.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    # MLflow's SQL store logs a database error with its traceback, then raises it; and a log
    # file on a full disk prints a traceback per record: the error reaches the user once, as one
    # line (`sweeps.sweep_run`), and the console still shows every record.
    logging.getLogger("mlflow.store.db.utils").addFilter(lambda record: not record.exc_info)
    logging.raiseExceptions = False
    try:
        # Before Hydra: it instantiates its own `hydra.callbacks` while composing.
        refuse_targets(sys.argv[1:])
        try:
            hydra_main()
        except KeyboardInterrupt:
            # A run stopped before its own handler could end it (as it started, say) ends
            # KILLED here, not FINISHED by MLflow's exit hook.
            while mlflow.active_run() is not None:
                mlflow.end_run(KILLED)
            finish_open_sweeps(interrupted=True)
            raise
        except BaseException as error:
            finish_open_sweeps(error=error)
            raise
        finally:
            # Hydra skips the callback's end when a job raised; summarise and close the sweep
            # here, before the error line, so the summary comes first.
            finish_open_sweeps()
    except KeyboardInterrupt:
        exit_stopped(stopping.first_signal())
    except SweepNotStarted as stop:
        if isinstance(stop.cause, ConfigError):
            exit_with(stop.cause)
        if (stale := schema_error(stop.cause)) is not None:
            exit_with(stale)
        exit_with(
            RuntimeError(f"the sweep did not start: {type(stop.cause).__name__}: {stop.cause}"),
            EXIT_FAILURE,
        )
    except CONFIG_ERRORS as error:
        if not report_config_errors:
            raise
        exit_with(error)
    except SweepEndError as error:
        exit_with(error, EXIT_FAILURE)
    except (MlflowException, OSError) as error:
        if (stale := schema_error(error)) is not None:
            exit_with(stale)
        reported = environment_error(error)
        if reported is None:
            raise
        exit_with(reported, EXIT_FAILURE)


def quiet_libraries() -> None:
    """Hide what MLflow and TensorFlow repeat in a sweep's console; a variable the user set
    wins. MLflow draws a progress bar for each artifact a summary reads back; TensorFlow warns
    that a function was traced again, as the population engine does for each population."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("tensorflow").addFilter(_not_retracing)


def _not_retracing(record: logging.LogRecord) -> bool:
    return "triggered tf.function retracing" not in record.getMessage()


def run_command(command: Callable[[], Any]) -> None:
    """Run a command that is not Hydra's (`python -m gatelab.runs`), reporting a config or
    store error as one line and exit 2, as `run_reporting_config_errors` does."""
    try:
        command()
    except CONFIG_ERRORS as error:
        exit_with(error)


# An output folder or store file the user cannot write: the environment, not a bug to trace.
UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def environment_error(error: BaseException) -> RuntimeError | None:
    """What the user must fix around the command, in one line: a tracking server that stopped
    answering, a folder that cannot be written; None for any other error (a bug to trace)."""
    if disk_full(error) and not isinstance(error, OSError):
        return RuntimeError(
            f"the store at {mlflow.get_tracking_uri()} is full ({store_reason(error)}), so the "
            "run could not be recorded to its end; free space, then end a run it left RUNNING "
            "with python -m gatelab.runs mark-dead-killed and run the command again"
        )
    if isinstance(error, MlflowException):
        message = str(error.message)
        if not (message.startswith("API request to ") and "failed with exception" in message):
            return None
        return RuntimeError(
            f"the tracking server at {mlflow.get_tracking_uri()} stopped answering during the "
            "run, so its runs could not be ended there; restart the server, then mark them "
            "with python -m gatelab.runs mark-dead-killed and run the command again"
        )
    if isinstance(error, OSError) and error.errno in UNWRITABLE and error.filename is not None:
        return RuntimeError(
            f"cannot write {error.filename}: {error.strerror}; run from a folder you can "
            "write, or point hydra.run.dir (hydra.sweep.dir with -m) at one"
        )
    return None


@contextmanager
def config_errors_exit(run_mode: RunMode) -> Iterator[None]:
    """In a single run, exit on a config error (or a server or folder the user must fix)
    before Hydra adds its own line about the job."""
    try:
        yield
    except ConfigError as error:
        # In a multirun Hydra records the job as failed and goes on with the others.
        if run_mode == RunMode.MULTIRUN:
            raise
        exit_with(error)
    except (MlflowException, OSError) as error:
        if (stale := schema_error(error)) is not None and run_mode != RunMode.MULTIRUN:
            exit_with(stale)
        reported = environment_error(error)
        if reported is None or run_mode == RunMode.MULTIRUN:
            raise
        exit_with(reported, EXIT_FAILURE)


def exit_stopped(signal_number: int) -> NoReturn:
    """A stop by Ctrl-C or SIGTERM, once every open run has ended KILLED: one line, and the
    shell's status for that signal (130 for SIGINT, 143 for SIGTERM)."""
    name = signal.Signals(signal_number).name
    _print_line(f"stopped by {name}: the runs this command had open ended KILLED")
    sys.exit(128 + signal_number)


def exit_with(error: BaseException, status: int | None = None) -> NoReturn:
    """Print the error's one line on stderr, whatever its characters or stderr's encoding, and
    exit with `status` (a config error's, 2, unless told)."""
    try:
        line = f"error: {redact(one_line(error))}"
    except Exception:  # The reporter must never hide the error behind one of its own.
        line = f"error: {type(error).__name__}: {error}".splitlines()[0]
    _print_line(line)
    sys.exit(EXIT_CONFIG_ERROR if status is None else status)


def _print_line(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except Exception:  # No usable sys.stderr, or an encoding that cannot write the line.
        os.write(2, line.encode("ascii", "backslashreplace") + b"\n")
