"""Runs written whole by explicit run id (MLflow's client), as a vectorized sweep's children are.

A run is three calls of MLflow's public client (`create_run` with its tags, one `log_batch`,
`set_terminated`), and nearly all of their time is MLflow's own Python (its ORM), not the
store's disk. So thousands of runs are written by a few processes at once, one per core: each
is spawned fresh (never forked from a process holding TensorFlow and open database connections)
and imports only MLflow. A local SQLite store takes their writes one at a time, in its
write-ahead log (`tracking.store`); a tracking server takes them side by side.
"""

import json
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

import mlflow
import mlflow.data
import numpy as np
from mlflow.entities import Dataset, DatasetInput, InputTag, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from gatelab.redaction import redact_output
from gatelab.tracking.records import RunRecord, table_json
from gatelab.tracking.store import install_sqlite_settings

# Below this many runs, starting processes (about 2.5 s each, side by side) costs more than
# they save (about 10 ms a run on 2 cores).
PARALLEL_FROM = 500
# More writers than this only queue at an SQLite store's single write lock.
MAX_WRITERS = 4
# Runs a writer takes at a time: few enough that Ctrl-C stops the writing within a second.
CHUNK = 25


def write(client: MlflowClient, experiment_id: str, record: RunRecord) -> str:
    """Write `record` as a run of `experiment_id` and return its id; KILLED if writing stops."""
    run = client.create_run(
        experiment_id, start_time=record.start_time, tags=record.tags, run_name=record.name
    )
    run_id = run.info.run_id
    try:
        client.log_batch(
            run_id,
            metrics=record.metrics(),
            params=[Param(key, value) for key, value in record.params.items()],
            tags=[RunTag(key, value) for key, value in result_tags(record).items()],
        )
        if record.dataset is not None and record.predictions is not None:
            client.log_inputs(run_id, datasets=[dataset_input(record)])
    except BaseException:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
        raise
    client.set_terminated(run_id, record.status, end_time=record.end_time)
    return run_id


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
    again as the rest of the run (benchmarks/bench_child_logging.py).
    """
    tags = dict(record.result_tags)
    if record.weights is not None:
        tags["weights"] = json.dumps(record.weights)
    if record.predictions is not None:
        tags["predictions"] = table_json(record.predictions)
    return tags


def write_all(
    experiment_id: str,
    records: list[RunRecord],
    *,
    on_written: Callable[[int], None] = lambda count: None,
    writers: int | None = None,
) -> dict[int, str]:
    """Write `records` into the tracking store MLflow is set to; return run ids by job number.

    Args:
        on_written: called with the number of runs just written, for progress.
        writers: processes writing at once; by default one per core (at most `MAX_WRITERS`)
            from `PARALLEL_FROM` runs on, else this process alone.
    """
    if writers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        writers = min(cores, MAX_WRITERS) if len(records) >= PARALLEL_FROM else 1
    if writers <= 1:
        client = MlflowClient()
        run_ids = {}
        for record in records:
            run_ids[record.job_number] = write(client, experiment_id, record)
            on_written(1)
        return run_ids
    return _write_in_processes(experiment_id, records, writers, on_written)


def _write_in_processes(
    experiment_id: str,
    records: list[RunRecord],
    writers: int,
    on_written: Callable[[int], None],
) -> dict[int, str]:
    chunks = [records[start : start + CHUNK] for start in range(0, len(records), CHUNK)]
    pool = ProcessPoolExecutor(
        writers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_writer,
        initargs=(mlflow.get_tracking_uri(),),
    )
    run_ids: dict[int, str] = {}
    try:
        pending = {pool.submit(_write_chunk, experiment_id, chunk) for chunk in chunks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                written = future.result()
                run_ids.update(written)
                on_written(len(written))
    finally:
        # On an error or Ctrl-C, the chunks being written finish (or end KILLED); no more start.
        pool.shutdown(wait=True, cancel_futures=True)
    return run_ids


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
