"""Where a sweep's child runs are written and read back: a store chosen once, from the URI.

MLflow chooses its own stores by the tracking URI's scheme through a registry; so do these. An
SQL store of the MLflow version and schema the bulk writer was tested with (`bulk`) gets its
children as rows, a batch a transaction; anything else (a tracking server, Databricks, a folder,
another MLflow or schema) through MLflow's client (`writer`). Callers ask `child_store(uri)`
and never choose: a new backend (an asynchronous REST batch writer, say) is one `register`.
"""

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from gatelab.tracking import bulk, writer
from gatelab.tracking.experiment import every_run
from gatelab.tracking.records import RunRecord

log = logging.getLogger(__name__)

# Runs a transaction, where the store has transactions (an SQL store's bulk writer).
BATCH = bulk.BATCH


def _nothing(written: dict[int, str]) -> None:
    pass


class ChildStore(ABC):
    """Writes child runs (`RunRecord`s) into one tracking store and reads them back.

    Args:
        uri: the tracking URI of the store.
    """

    # What the console calls the writer (the sweep's estimate names it).
    name: ClassVar[str]
    # A child run's logging time on 2 cores (docs/speed.md: `benchmarks/bench_bulk.py`,
    # `bench_sweep.py --scale`).
    seconds_per_child: ClassVar[float]

    def __init__(self, uri: str):
        self.uri = uri

    @abstractmethod
    def write_all(
        self,
        experiment_id: str,
        records: list[RunRecord],
        *,
        on_written: Callable[[dict[int, str]], None] = _nothing,
        batch: int = BATCH,
        cancel: threading.Event | None = None,
    ) -> dict[int, str]:
        """Write `records` as runs of `experiment_id`; return their run ids by job number.

        Args:
            on_written: called with the run ids just written, by job number, as they are
                written: each job once, never with none (what a stop leaves written is known).
            batch: runs a transaction, where the store has transactions.
            cancel: once set (by another thread: a stop, an error), no more transaction or
                chunk of runs starts, and KeyboardInterrupt is raised once those being
                written are told to `on_written`.
        """

    @abstractmethod
    def write(self, experiment_id: str, record: RunRecord) -> str:
        """Write one record (a job's FAILED child) as a run of `experiment_id`; return its id."""

    @abstractmethod
    def runs_tagged(self, experiment_id: str, key: str, value: str) -> list[Run]:
        """The active runs of `experiment_id` whose tag `key` is `value`, with their tags, params
        and latest metrics (inputs not promised)."""


class SqlChildStore(ChildStore):
    """An SQL store's children as rows of MLflow's own tables (`bulk`)."""

    name = "SQL bulk writer"
    seconds_per_child = 0.002

    @classmethod
    def for_uri(cls, uri: str) -> ChildStore:
        """This store for an SQL URI the bulk writer was tested with, else MLflow's client."""
        reason = bulk.unsupported_reason(uri)
        return cls(uri) if reason is None else ClientChildStore(uri, reason)

    def write_all(
        self,
        experiment_id: str,
        records: list[RunRecord],
        *,
        on_written: Callable[[dict[int, str]], None] = _nothing,
        batch: int = BATCH,
        cancel: threading.Event | None = None,
    ) -> dict[int, str]:
        log.info(
            "%d child runs written by the SQL bulk writer (%d runs a transaction)",
            len(records),
            batch,
        )
        return self._writer(experiment_id).write_all(records, on_written, batch, cancel)

    def write(self, experiment_id: str, record: RunRecord) -> str:
        return self._writer(experiment_id).write_batch([record])[record.job_number]

    def runs_tagged(self, experiment_id: str, key: str, value: str) -> list[Run]:
        # Straight from the tables: 10,000 runs in about a second, not MLflow's 9 s.
        return bulk.runs_tagged(bulk.engine_of(self.uri), experiment_id, key, value)

    def _writer(self, experiment_id: str) -> bulk.BulkWriter:
        return bulk.BulkWriter(bulk.engine_of(self.uri), experiment_id)


class ClientChildStore(ChildStore):
    """Any store's children through MLflow's client (`writer`), in writer processes for many.

    Args:
        reason: why the store's children are not written in bulk (said when they are written).
    """

    name = "MLflow client"
    seconds_per_child = 0.015

    def __init__(self, uri: str, reason: str | None = None):
        super().__init__(uri)
        self.reason = reason

    @classmethod
    def for_uri(cls, uri: str) -> ChildStore:
        return cls(uri, bulk.unsupported_reason(uri))

    def write_all(
        self,
        experiment_id: str,
        records: list[RunRecord],
        *,
        on_written: Callable[[dict[int, str]], None] = _nothing,
        batch: int = BATCH,
        cancel: threading.Event | None = None,
    ) -> dict[int, str]:
        because = f": {self.reason}" if self.reason else ""
        log.info("%d child runs written by MLflow's client%s", len(records), because)
        return writer.write_all(
            experiment_id, records, on_written=on_written, tracking_uri=self.uri, cancel=cancel
        )

    def write(self, experiment_id: str, record: RunRecord) -> str:
        return writer.write(MlflowClient(self.uri), experiment_id, record)

    def runs_tagged(self, experiment_id: str, key: str, value: str) -> list[Run]:
        return every_run(MlflowClient(self.uri), experiment_id, f"tags.`{key}` = '{value}'")


# How a store is made for a URI, by its scheme (`sqlite` of `sqlite:///mlflow.db`, `postgresql`
# of `postgresql+psycopg2://...`); a scheme not here is written through MLflow's client.
_BUILDERS: dict[str, Callable[[str], ChildStore]] = {
    scheme: SqlChildStore.for_uri for scheme in bulk.SQL_SCHEMES
}


def register(scheme: str, builder: Callable[[str], ChildStore]) -> None:
    """Make the child store of URIs of `scheme` with `builder(uri)`."""
    _BUILDERS[scheme] = builder


def child_store(uri: str | None = None) -> ChildStore:
    """The store that writes and reads children at `uri` (by default where MLflow is set to)."""
    uri = uri or mlflow.get_tracking_uri()
    return _BUILDERS.get(bulk.scheme_of(uri), ClientChildStore.for_uri)(uri)
