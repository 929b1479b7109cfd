"""Runs written whole by explicit run id (MLflow's client), as a vectorized sweep's children are.

A run is three calls of MLflow's public client (`create_run` with its tags, one `log_batch`,
`set_terminated`), and nearly all of their time is MLflow's own Python (its ORM), not the
store's disk. So thousands of runs are written by a few processes at once, one per core: each
is spawned fresh (never forked from a process holding TensorFlow and open database connections)
and imports only MLflow. A local SQLite store takes their writes one at a time, in its
write-ahead log (`tracking.store`); a tracking server takes them side by side.
"""

import json
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

import mlflow
import mlflow.data
import numpy as np
from mlflow.entities import Dataset, DatasetInput, InputTag, Param, RunStatus, RunTag
from mlflow.environment_variables import MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

from gatelab import stopping
from gatelab.redaction import redact_output
from gatelab.tracking.records import SWEEP_TAG, RunRecord, description_tags, table_json
from gatelab.tracking.store import install_sqlite_settings

log = logging.getLogger(__name__)

# Below this many runs, starting processes (about 2.5 s each, side by side) costs more than
# they save (about 10 ms a run on 2 cores).
PARALLEL_FROM = 500
# More writers than this only queue at an SQLite store's single write lock.
MAX_WRITERS = 4
# Runs a writer takes at a time: few enough that Ctrl-C stops the writing within a second.
CHUNK = 25
# Seconds a writer has to exit once every chunk returned, before it is taken as stuck (on a lock
# a killed writer held) and killed: an idle writer exits in milliseconds.
EXIT_SECONDS = 10
# How often (s) the writing, waiting on its writers, sees whether it was cancelled.
CANCEL_EVERY = 0.1


def write(
    client: MlflowClient,
    experiment_id: str,
    record: RunRecord,
    on_written: Callable[[dict[int, str]], None] = lambda written: None,
) -> str:
    """Write `record` as a run of `experiment_id` and return its id; KILLED if writing stops.
    `on_written` is told its id as it ends, before a stop signal that came meanwhile is raised."""
    run = client.create_run(
        experiment_id, start_time=record.start_time, tags=record.tags, run_name=record.name
    )
    run_id = run.info.run_id
    try:
        client.log_batch(
            run_id,
            metrics=record.metrics(),
            params=[Param(key, value) for key, value in record.params.items()],
            tags=[
                RunTag(key, value)
                for key, value in {
                    **result_tags(record),
                    **description_tags(record, run_id),
                }.items()
            ],
        )
        if run_inputs(record):
            client.log_inputs(run_id, datasets=run_inputs(record))
    except BaseException:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
        raise
    # Ended and counted together: what a stop leaves ended is what the caller counts.
    with stopping.deferred():
        client.set_terminated(run_id, record.status, end_time=record.end_time)
        on_written({record.job_number: run_id})
    return run_id


def run_inputs(record: RunRecord) -> list[DatasetInput]:
    """The inputs a record logs: its truth table, when it has one (a run that trained)."""
    if record.dataset is None or record.predictions is None:
        return []
    return [dataset_input(record)]


def dataset_input(record: RunRecord) -> DatasetInput:
    """The record's truth table as the input a single run logs (`run.log_dataset`)."""
    inputs = np.asarray(record.predictions["inputs"], np.float32)
    targets = np.asarray(record.predictions["target"], np.float32)
    key = (record.dataset, inputs.tobytes(), targets.tobytes())
    if key not in _DATASETS:
        dataset = mlflow.data.from_numpy(inputs, targets=targets, name=record.dataset)
        _DATASETS[key] = dataset._to_mlflow_entity()
    return DatasetInput(_DATASETS[key], tags=[InputTag(MLFLOW_DATASET_CONTEXT, "training")])


# Every child of a population has the same table: its entity (and digest) is made once.
_DATASETS: dict[tuple, Dataset] = {}


def result_tags(record: RunRecord) -> dict[str, str]:
    """What a record logs at its end as tags: its result tags, weights and predictions.

    Weights and predictions as tags of the same write: two artifacts per child cost as much
    again as the rest of the run (benchmarks/bench_child_logging.py). A tag longer than MLflow
    keeps (it cuts the value, which would no longer be JSON) is left out: every member's arrays
    are in the parent's `members.npz` as well (the `arrays` tag says so).
    """
    tags = dict(record.result_tags)
    for key, text in (
        ("weights", None if record.weights is None else json.dumps(record.weights)),
        ("predictions", None if record.predictions is None else table_json(record.predictions)),
    ):
        if text is not None and len(text) <= MAX_TAG_VAL_LENGTH:
            tags[key] = text
    return tags


def write_all(
    experiment_id: str,
    records: list[RunRecord],
    *,
    on_written: Callable[[dict[int, str]], None] = lambda written: None,
    writers: int | None = None,
    tracking_uri: str | None = None,
    cancel: threading.Event | None = None,
) -> dict[int, str]:
    """Write `records` into the tracking store at `tracking_uri` (by default the one MLflow is
    set to); return run ids by job number.

    Args:
        on_written: called with the run ids just written, by job number, as they are written
            (what a stop leaves written is known to the caller); never with none, and each
            job once, also when a writer process died and its runs were written again.
        writers: processes writing at once; by default one per core (at most `MAX_WRITERS`)
            from `PARALLEL_FROM` runs on, else this process alone.
        cancel: once set (by another thread), no more run or chunk starts, and
            KeyboardInterrupt is raised once those being written are told to `on_written`.
    """
    with _no_run_links():
        return _write_all(
            tracking_uri or mlflow.get_tracking_uri(),
            experiment_id,
            records,
            on_written,
            writers,
            cancel or threading.Event(),
        )


@contextmanager
def _no_run_links():
    """No "View run ... at <server>" line per run (and no `get_run` to make it): the sweep
    prints one link to its children. The writer processes inherit the setting."""
    name = MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT.name
    before = os.environ.get(name)
    os.environ[name] = "true"
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


def _write_all(
    tracking_uri: str,
    experiment_id: str,
    records: list[RunRecord],
    on_written: Callable[[dict[int, str]], None],
    writers: int | None,
    cancel: threading.Event,
) -> dict[int, str]:
    if writers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        writers = min(cores, MAX_WRITERS) if len(records) >= PARALLEL_FROM else 1
    if writers <= 1:
        client = MlflowClient(tracking_uri)
        run_ids = {}
        for record in records:
            if cancel.is_set():
                raise KeyboardInterrupt
            run_ids[record.job_number] = write(client, experiment_id, record, on_written)
        return run_ids
    # The first here: the dataset it logs exists before the writers log it too (MLflow's store
    # inserts a new dataset unguarded: two writers inserting it at once, one fails).
    first = records[0]
    run_ids = {
        first.job_number: write(MlflowClient(tracking_uri), experiment_id, first, on_written)
    }
    run_ids.update(
        _write_in_processes(tracking_uri, experiment_id, records[1:], writers, on_written, cancel)
    )
    rest = [record for record in records if record.job_number not in run_ids]
    if rest:
        # A writer process died (killed, out of memory): what it had started is found again.
        found = _whole_runs(tracking_uri, experiment_id, rest)
        run_ids.update(found)
        if found:  # `on_written` is told run ids, never nothing
            on_written(found)
        rest = [record for record in rest if record.job_number not in found]
        log.warning(
            "a writer process died: %d run(s) it left unfinished are written again here",
            len(rest),
        )
        run_ids.update(_write_all(tracking_uri, experiment_id, rest, on_written, 1, cancel))
    return run_ids


def _write_in_processes(
    tracking_uri: str,
    experiment_id: str,
    records: list[RunRecord],
    writers: int,
    on_written: Callable[[dict[int, str]], None],
    cancel: threading.Event,
) -> dict[int, str]:
    """Write `records` with `writers` processes; the runs of a writer that died are left out."""
    chunks = [records[start : start + CHUNK] for start in range(0, len(records), CHUNK)]
    pool = ProcessPoolExecutor(
        writers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_writer,
        initargs=(tracking_uri,),
    )
    run_ids: dict[int, str] = {}
    pending: set = set()
    others = set(multiprocessing.active_children())
    broken = False
    writer_processes: set = set()
    submitted: list[Future] = []
    counted: set = set()

    def count(future: Future) -> None:
        # Counted once, whole: a stop signal waits for `on_written` to return.
        with stopping.deferred():
            run_ids.update(future.result())
            on_written(future.result())
            counted.add(future)

    try:
        for chunk in chunks:
            try:
                submitted.append(pool.submit(_write_chunk, experiment_id, chunk))
            except BrokenProcessPool:
                # A writer died while chunks were still handed out: the rest are lost with
                # the pool, as those it had not returned, and written again by the caller.
                broken = True
                if stopping.stopping():
                    raise KeyboardInterrupt from None
                break
        pending = set(submitted)
        # The writers, started by the submits: a dead one may leave the others stuck.
        writer_processes = set(multiprocessing.active_children()) - others
        while pending:
            # Woken now and then to see `cancel`: a signal reaches the main thread alone.
            done, pending = wait(pending, timeout=CANCEL_EVERY, return_when=FIRST_COMPLETED)
            if cancel.is_set():
                raise KeyboardInterrupt
            for future in done:
                try:
                    future.result()
                except BrokenProcessPool:
                    broken = True
                    if stopping.stopping():
                        raise KeyboardInterrupt from None  # the stop's signal killed it
                    continue  # every chunk not yet returned is lost with the pool
                count(future)
    finally:
        # And any the pool started since (a writer may be spawned after the first submits).
        writer_processes |= set(multiprocessing.active_children()) - others
        if broken or any(process.exitcode not in (None, 0) for process in writer_processes):
            # The dead writer may have held the pool's queue lock, on which the others would
            # then wait forever: they end here, their unfinished runs found by the caller. Killed
            # before the shutdown: the pool's manager thread joins them, and would wait too.
            _end(writer_processes, 0)
            pool.shutdown(wait=False, cancel_futures=True)
        elif not pending:
            # Every chunk returned: the writers have only to exit. One killed after its last
            # chunk (its death not seen yet) may have held the lock the others need to.
            pool.shutdown(wait=False)
            _end(writer_processes, EXIT_SECONDS)
        # On an error or Ctrl-C, the chunks being written finish (or end KILLED); no more start.
        pool.shutdown(wait=True, cancel_futures=True)
        # Those, written whole meanwhile, are counted too: the caller's count is the store's.
        for future in submitted:
            finished = future.done() and not future.cancelled()
            if finished and future not in counted and future.exception() is None:
                count(future)
    return run_ids


def _end(processes: set, seconds: float) -> None:
    """Let `processes` exit for `seconds`, then kill the ones still there."""
    for process in processes:
        process.join(seconds)
        if process.is_alive():
            process.kill()
            process.join()


def _whole_runs(tracking_uri: str, experiment_id: str, records: list[RunRecord]) -> dict[int, str]:
    """The runs of `records` a dead writer finished, by job number; the rest it began are
    deleted (they are written again)."""
    wanted = {record.job_number: record for record in records}
    sweeps = {record.tags.get(SWEEP_TAG) for record in records}
    (sweep,) = sweeps if len(sweeps) == 1 else (None,)
    client = MlflowClient(tracking_uri)
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{SWEEP_TAG}` = '{sweep}'" if sweep else "",
        max_results=50000,
    )
    found = {}
    for run in runs:
        number = run.data.tags.get("hydra.job.num", "")
        record = wanted.get(int(number)) if number.isdigit() else None
        if record is None or run.info.run_name != record.name:
            continue
        # Ended as the record says (FINISHED, or FAILED when it diverged): it is whole.
        if run.info.status == record.status and record.job_number not in found:
            found[record.job_number] = run.info.run_id
        else:
            client.delete_run(run.info.run_id)
    return found


def _start_writer(tracking_uri: str) -> None:
    install_sqlite_settings()
    redact_output()
    # Ctrl-C reaches the whole process group: the launching process alone decides, and lets the
    # chunks being written finish. SIGTERM still ends a writer (its run is marked KILLED after).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    mlflow.set_tracking_uri(tracking_uri)


def _write_chunk(experiment_id: str, records: Iterable[RunRecord]) -> dict[int, str]:
    client = MlflowClient()
    return {record.job_number: write(client, experiment_id, record) for record in records}
