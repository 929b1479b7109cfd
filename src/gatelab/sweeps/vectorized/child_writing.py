"""A population's children written into the store, a group of members at a time: in a thread
while the next group trains, or in the calling one (`sweeps.vectorized.population`)."""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from omegaconf import DictConfig

from gatelab.sweeps.members import Members
from gatelab.sweeps.progress import Progress
from gatelab.sweeps.results import hold
from gatelab.sweeps.sweep_folder import SweepArrays
from gatelab.sweeps.vectorized.member_records import MemberRecords, member_arrays
from gatelab.tracking import children, records
from gatelab.tracking.experiment import configure

log = logging.getLogger(__name__)

# How often (s) a thread waiting for work in the background wakes to act on a stop signal.
WAKE_EVERY = 0.1


@dataclass
class Recorded:
    """What a sweep's populations have written, kept as it is written: a stop loses none of it.

    Args:
        arrays: the written members' loss curves, weights and outputs, and the boundaries of
            those a gallery shows, by child run id (`sweep_folder.SweepArrays`).
        written: child runs written.
        trained: jobs trained (or failed on a bad value), written or not.
    """

    arrays: SweepArrays = field(default_factory=SweepArrays)
    written: int = 0
    trained: int = 0


class Background:
    """`function(*args, done)` run in a thread, which may call `done(count)` as it gets through
    its items in order; `wait(count)` waits for the first `count` of them (or for its end), and
    raises in the waiting thread what it raised. A daemon thread: a stopped sweep does not wait
    for it to end."""

    def __init__(self, function: Callable[..., None], *args: Any):
        self.condition = threading.Condition()
        self.count = 0
        self.ended = False
        self.errors: list[BaseException] = []
        name = getattr(function, "__qualname__", "background")
        thread = threading.Thread(target=self._run, args=(function, *args), name=name)
        thread.daemon = True
        thread.start()

    def _run(self, function: Callable[..., None], *args: Any) -> None:
        try:
            function(*args, self._done)
        except BaseException as error:  # raised in the waiting thread, by `wait`
            self.errors.append(error)
        finally:
            with self.condition:
                self.ended = True
                self.condition.notify_all()

    def _done(self, count: int) -> None:
        with self.condition:
            self.count = count
            self.condition.notify_all()

    def wait(self, count: int | None = None) -> None:
        """Wait until the first `count` items are done (None: until the function returned)."""
        with self.condition:
            # Woken every `WAKE_EVERY` s: a stop signal the kernel gave another thread (this
            # one's, a writer's, TensorFlow's) is only acted on once this thread runs again.
            while not self.condition.wait_for(
                lambda: self.ended or (count is not None and self.count >= count), WAKE_EVERY
            ):
                pass
        if self.errors:
            raise self.errors[0]


@dataclass(frozen=True)
class Trained:
    """A group's children to write: `run_records` (and any job refused a value), of the jobs of
    `group` (members `0..` of `members`, in order), with the `boundaries` a gallery shows."""

    run_records: list[records.RunRecord]
    members: Members | None
    group: list[tuple[records.Job, dict[str, Any]]]
    boundaries: dict[int, dict[str, np.ndarray]]


class Children:
    """Writes the children of a population of `total` jobs (the first `first_job`), a group at a
    time, and says how far it got."""

    def __init__(
        self,
        cfg: DictConfig,
        first_job: records.Job,
        total: int,
        progress: Progress,
        recorded: Recorded,
        runs_per_transaction: int,
        member_records: MemberRecords,
    ):
        self.experiment_id = configure(
            cfg.tracking.uri, cfg.tracking.experiment, first_job.experiment_id
        )
        self.store = children.child_store()
        self.layers = member_records.layers
        self.progress, self.recorded = progress, recorded
        self.batch = runs_per_transaction
        self.swept = first_job.swept
        self.total = total
        self.written = 0
        self.seconds = 0.0
        self.started: float | None = None

    def written_meanwhile(self, trained: Trained) -> "Writing":
        """Start writing `trained`'s children in a thread."""
        cancel = threading.Event()
        # Waited for whole: no count of its own done (`Background`'s `done`).
        return Writing(Background(lambda done: self.write(trained, cancel)), cancel)

    def write(self, trained: Trained, cancel: threading.Event | None = None) -> None:
        """Write `trained`'s children; no more transactions once `cancel` is set."""
        started = time.perf_counter()
        self.started = self.started or started
        record_of = {record.job_number: record for record in trained.run_records}
        index_of = {job.number: index for index, (job, _) in enumerate(trained.group)}

        def on_written(run_ids: dict[int, str]) -> None:
            self.written += len(run_ids)
            self.recorded.written += len(run_ids)
            # The summary's rows, as written: not read back from the store (`sweeps.results`).
            hold([(record_of[number], run_id) for number, run_id in run_ids.items()], self.swept)
            rows = [
                (run_id, index_of[number])
                for number, run_id in run_ids.items()
                if number in index_of
            ]  # the others failed on a bad value: nothing trained
            arrays = self.recorded.arrays
            if rows:
                history = trained.members.history
                arrays.members[str(len(arrays.members))] = member_arrays(self.layers, history, rows)
            for number, run_id in run_ids.items():
                if number in index_of:
                    arrays.losses[run_id] = trained.members.history.member(index_of[number]).loss
                if number in trained.boundaries:
                    arrays.boundaries[run_id] = trained.boundaries[number]
            self.progress.show(
                logging_progress(self.written, self.total, time.perf_counter() - self.started),
                part="writing",
            )

        try:
            self.store.write_all(
                self.experiment_id,
                trained.run_records,
                on_written=on_written,
                batch=self.batch,
                cancel=cancel,
            )
        finally:
            self.seconds += time.perf_counter() - started

    def logged(self) -> None:
        """Log how many children were written, in how long (the writing's own time)."""
        log.info(
            "logged %d child runs in %.2f s (%.1f ms each)",
            self.written,
            self.seconds,
            1000 * self.seconds / max(self.written, 1),
        )


class Writing:
    """A group's children being written in a thread (`Children.written_meanwhile`)."""

    def __init__(self, background: Background, cancel_event: threading.Event):
        self.background = background
        self.cancel_event = cancel_event
        self.raised: BaseException | None = None  # its own error, once raised to the caller

    def wait(self) -> None:
        """Wait for the writing to end; raise what it raised."""
        try:
            self.background.wait()
        except Exception as error:
            self.raised = error
            raise

    def cancel(self) -> None:
        """No more transactions after the one being written; wait for it (it is counted)."""
        self.cancel_event.set()
        self.finish()

    def finish(self) -> None:
        """Wait for the writing to end, while an error is being raised (a stop's, training's,
        or the writing's own, which is not said twice)."""
        try:
            self.background.wait()
        except KeyboardInterrupt:
            pass  # the cancelling, or the same stop: the caller raises its own
        except Exception as error:
            if error is not self.raised:
                log.exception("writing a group's children failed too")


def logging_progress(written: int, total: int, seconds: float) -> str:
    """The progress line of a population's child runs: how many are logged of `total` after
    `seconds`, at what rate, and (once one is) how long the rest will take."""
    if written <= 0:
        return f"child runs logged: 0/{total}"
    rate = written / max(seconds, 1e-9)
    eta = (total - written) / rate
    return f"child runs logged: {written}/{total} ({rate:.0f}/s, ETA {eta:.0f} s)"
