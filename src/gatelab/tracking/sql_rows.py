"""A run's rows as MLflow's SQL store holds them: each table's columns, a run id, a metric value.

The bulk writer (`tracking.bulk`) fills `Rows` from its records and inserts them a batch a
transaction; the conformance test (`tests/tracking/test_bulk.py`) holds them equal, row for row,
to what MLflow's client writes.
"""

import itertools
import os
import time
import uuid
from dataclasses import dataclass, field

import sqlalchemy
from mlflow.store.tracking.dbmodels.models import (
    SqlDataset,
    SqlInput,
    SqlInputTag,
    SqlLatestMetric,
    SqlMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)

# MLflow's store replaces an infinite metric by the largest float (SQL has no infinity).
LARGEST = 1.7976931348623157e308


# The columns of each table a run's rows fill, in the order their foreign keys need: every
# column of MLflow's models but `deleted_time` (NULL, as MLflow leaves it for an active run).
COLUMNS: dict[type, tuple[str, ...]] = {
    SqlDataset: (
        "dataset_uuid",
        "experiment_id",
        "name",
        "digest",
        "dataset_source_type",
        "dataset_source",
        "dataset_schema",
        "dataset_profile",
    ),
    SqlRun: (
        "run_uuid",
        "name",
        "source_type",
        "source_name",
        "entry_point_name",
        "user_id",
        "status",
        "start_time",
        "end_time",
        "source_version",
        "lifecycle_stage",
        "artifact_uri",
        "experiment_id",
    ),
    SqlTag: ("run_uuid", "key", "value"),
    SqlParam: ("run_uuid", "key", "value"),
    SqlMetric: ("run_uuid", "key", "value", "timestamp", "step", "is_nan"),
    SqlLatestMetric: ("run_uuid", "key", "value", "timestamp", "step", "is_nan"),
    SqlInput: (
        "input_uuid",
        "source_type",
        "source_id",
        "destination_type",
        "destination_id",
        "step",
    ),
    SqlInputTag: ("input_uuid", "name", "value"),
}


@dataclass
class Rows:
    """The rows of some runs, by table, each a tuple of that table's `COLUMNS`."""

    tables: dict[type, list[tuple]] = field(
        default_factory=lambda: {model: [] for model in COLUMNS}
    )

    def insert(self, connection: sqlalchemy.Connection) -> None:
        """Insert every row, table by table. SQLite's driver is handed the tuples as they are
        (`executemany`: a tenth of the time SQLAlchemy takes to bind each row); any other
        database gets SQLAlchemy's own insert, which batches rows into multi-row statements."""
        sqlite = connection.dialect.name == "sqlite"
        for model, rows in self.tables.items():
            if not rows:
                continue
            columns = COLUMNS[model]
            if sqlite:
                table = model.__tablename__
                connection.exec_driver_sql(
                    f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))})",
                    rows,
                )
            else:
                connection.execute(
                    model.__table__.insert(), [dict(zip(columns, row, strict=True)) for row in rows]
                )


def new_id() -> str:
    """A run id as MLflow writes one (32 hex digits), laid out as a UUIDv7 (RFC 9562): the time
    in ms, then a counter from a random start, so ids rise in the order they are made.

    MLflow's own are random (`uuid4`). The store indexes runs' rows by run id, and random ids
    land all over those indexes: each insert touches a page of its own, and more of them as the
    store grows. Rising ids append at the end: a bulk child costs 0.76 ms instead of 1.18 in a
    fresh store (`benchmarks/bench_bulk.py`), and no more in a large one.
    """
    milliseconds = time.time_ns() // 1_000_000
    tail = next(_ID_COUNTER) & ((1 << 74) - 1)
    value = (
        (milliseconds & ((1 << 48) - 1)) << 80
        | 0x7 << 76  # the version
        | (tail >> 62) << 64
        | 0b10 << 62  # the variant
        | tail & ((1 << 62) - 1)
    )
    return uuid.UUID(int=value).hex


# Where this process's ids count from: two processes writing in the same millisecond do not meet.
_ID_COUNTER = itertools.count(int.from_bytes(os.urandom(10), "big"))


def sanitized(value: float) -> tuple[bool, float]:
    """A metric value as MLflow's SQL store keeps it: NaN as 0 (flagged), infinity as the
    largest float."""
    if value != value:
        return True, 0.0
    if value in (float("inf"), float("-inf")):
        return False, LARGEST if value > 0 else -LARGEST
    return False, value
