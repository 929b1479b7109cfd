"""Children written straight into an SQL store's own tables, a batch of runs per transaction.

MLflow's client writes a run in three ORM sessions, each with its look-ups and its commit: about
20 ms a child, nearly all of it MLflow's Python. The rows themselves are few (the run, its tags,
params, metric points, latest metrics and its dataset input), so where the tracking URI is a
database MLflow's SQL store serves, the same `RunRecord`s become the same rows inserted into
MLflow's tables (`sql_rows.Rows`: tuples handed to SQLite's driver as they are, SQLAlchemy's
multi-row insert elsewhere), `BATCH` runs a transaction: a stop or a crash leaves whole children
or none of a batch, never a run without its params or one left RUNNING. Run ids rise as they
are made (`sql_rows.new_id`), so a batch's rows land at one end of the run-id indexes.

The rows are the ones `writer.write` makes MLflow write (`tests/tracking/test_bulk.py` holds the
two equal), for the MLflow version and schema they were tested with (`unsupported_reason`).
`tracking.children` chooses this writer for such a store, and MLflow's client for anything else
(a tracking server, Databricks, a folder, another MLflow or schema).
"""

import math
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable

import mlflow
import sqlalchemy
from mlflow.entities import (
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunTag,
    SourceType,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_STATE
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.store.tracking.dbmodels.models import (
    SqlDataset,
    SqlExperiment,
    SqlInput,
    SqlInputTag,
    SqlLatestMetric,
    SqlMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.tracking._tracking_service.utils import _get_store
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME, MLFLOW_USER
from mlflow.utils.uri import append_to_uri_path
from mlflow.utils.validation import (
    _validate_dataset_inputs,
    _validate_metric,
    _validate_param,
    _validate_tag,
)

from gatelab import stopping
from gatelab.redaction import redact
from gatelab.tracking import writer
from gatelab.tracking.records import RunRecord, description_tags
from gatelab.tracking.sql_rows import Rows, new_id, sanitized

# The MLflow and the schema (its alembic head) whose rows the conformance test compared.
TESTED_MLFLOW = "3.17.2"
TESTED_SCHEMA = "dc11669786a5"
SQL_SCHEMES = ("sqlite", "postgresql", "mysql")
# Runs a transaction: about 90 rows each, a fraction of a second a batch.
BATCH = 500
SOURCE_TYPE = SourceType.to_string(SourceType.UNKNOWN)


def runs_tagged(engine: sqlalchemy.Engine, experiment_id: str, key: str, value: str) -> list[Run]:
    """The active runs of the experiment whose tag `key` is `value`, with their tags, params and
    latest metrics (`search_runs`'s `Run`s, without inputs), in four queries of the SQL store
    `engine` connects to."""
    runs, tags, params, latest = (
        model.__table__ for model in (SqlRun, SqlTag, SqlParam, SqlLatestMetric)
    )
    selected = (
        sqlalchemy.select(runs.c.run_uuid)
        .join(tags, tags.c.run_uuid == runs.c.run_uuid)
        .where(
            runs.c.experiment_id == int(experiment_id),
            runs.c.lifecycle_stage == LifecycleStage.ACTIVE,
            tags.c.key == key,
            tags.c.value == value,
        )
    )
    data: dict[str, tuple[list, list, list]] = {}
    with engine.connect() as connection:
        infos = connection.execute(runs.select().where(runs.c.run_uuid.in_(selected))).all()
        for info in infos:
            data[info.run_uuid] = ([], [], [])
        for row in connection.execute(tags.select().where(tags.c.run_uuid.in_(selected))):
            data[row.run_uuid][2].append(RunTag(row.key, row.value))
        for row in connection.execute(params.select().where(params.c.run_uuid.in_(selected))):
            data[row.run_uuid][1].append(Param(row.key, row.value))
        for row in connection.execute(latest.select().where(latest.c.run_uuid.in_(selected))):
            metric_value = float("nan") if row.is_nan else row.value
            data[row.run_uuid][0].append(Metric(row.key, metric_value, row.timestamp, row.step))
    return [
        Run(
            RunInfo(
                run_id=info.run_uuid,
                experiment_id=str(info.experiment_id),
                user_id=info.user_id,
                status=info.status,
                start_time=info.start_time,
                end_time=info.end_time,
                lifecycle_stage=info.lifecycle_stage,
                artifact_uri=info.artifact_uri,
                run_name=info.name,
            ),
            RunData(*data[info.run_uuid]),
        )
        for info in infos
    ]


def unsupported_reason(uri: str) -> str | None:
    """Why the runs of this tracking URI cannot be written in bulk, or None if they can."""
    if scheme_of(uri) not in SQL_SCHEMES:
        return f"{redact(uri)!r} is not an SQL store ({', '.join(SQL_SCHEMES)})"
    if mlflow.__version__ != TESTED_MLFLOW:
        return f"MLflow {mlflow.__version__}; the bulk writer is tested with {TESTED_MLFLOW}"
    store = _store(uri)
    if type(store) is not SqlAlchemyStore:
        return f"MLflow serves it with {type(store).__name__}, not its SQL store"
    with store.engine.connect() as connection:
        schema = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    if schema != TESTED_SCHEMA:
        return f"its schema is {schema}; the bulk writer is tested with {TESTED_SCHEMA}"
    return None


def scheme_of(uri: str) -> str:
    """The scheme of a tracking URI, without its driver (`postgresql+psycopg2` is `postgresql`)."""
    return urllib.parse.urlsplit(uri).scheme.partition("+")[0]


def engine_of(uri: str) -> sqlalchemy.Engine:
    """The engine of the SQL store MLflow itself uses for `uri` (one per URI)."""
    return _store(uri).engine


def _store(uri: str) -> AbstractStore:
    """The store MLflow itself would use for `uri` (cached by MLflow, one engine per URI)."""
    return _get_store(uri)


class BulkWriter:
    """Writes the runs of one experiment of an SQL store, a batch a transaction."""

    def __init__(self, engine: sqlalchemy.Engine, experiment_id: str):
        self.engine = engine
        self.experiment_id = experiment_id
        experiments = SqlExperiment.__table__
        with engine.connect() as connection:
            experiment = connection.execute(
                sqlalchemy.select(
                    experiments.c.artifact_location, experiments.c.lifecycle_stage
                ).where(experiments.c.experiment_id == int(experiment_id))
            ).one_or_none()
        if experiment is None or experiment.lifecycle_stage != LifecycleStage.ACTIVE:
            raise MlflowException(
                f"The experiment {experiment_id} must be in the 'active' state to write runs "
                "into it; restore it or choose another",
                INVALID_STATE,
            )
        self.artifact_location = experiment.artifact_location
        # The datasets of the experiment by (name, digest), as committed: uuid.
        self.datasets: dict[tuple[str, str], str] = {}
        # The metric names `_validate_metrics` found valid.
        self.metric_names: set[str] = set()
        # The params and tags `_valid` checked, by check and (key, value): as MLflow keeps them.
        self.checked: dict[tuple, tuple[str, str]] = {}

    def write_all(
        self,
        records: list[RunRecord],
        on_written: Callable[[dict[int, str]], None] = lambda written: None,
        batch: int = BATCH,
        cancel: threading.Event | None = None,
    ) -> dict[int, str]:
        """Write `records`, `batch` runs a transaction; `on_written` after each commit; no
        more transactions once `cancel` is set (KeyboardInterrupt)."""
        run_ids: dict[int, str] = {}
        for start in range(0, len(records), batch):
            if cancel is not None and cancel.is_set():
                raise KeyboardInterrupt
            run_ids.update(self.write_batch(records[start : start + batch], on_written))
        return run_ids

    def write_batch(
        self,
        records: list[RunRecord],
        on_written: Callable[[dict[int, str]], None] = lambda written: None,
    ) -> dict[int, str]:
        """Write `records` in one transaction: all of them, or (on any error) none; then tell
        `on_written` their run ids, before a stop signal that came meanwhile is raised: what a
        stop leaves committed is what the caller counts."""
        rows = Rows()
        new_datasets: dict[tuple[str, str], str] = {}
        run_ids = {}
        now = int(time.time() * 1000)
        for record in records:
            run_id = new_id()
            self._add_run(rows, record, run_id, now)
            self._add_inputs(rows, record, run_id, new_datasets)
            run_ids[record.job_number] = run_id
        # Committed whole or rolled back whole, and counted: a stop signal waits for both.
        try:
            with stopping.deferred():
                with self.engine.begin() as connection:
                    rows.insert(connection)
                self.datasets.update(new_datasets)
                on_written(run_ids)
        except sqlalchemy.exc.IntegrityError:
            # Another writer (a shard) inserted a dataset this batch was to insert, since it
            # looked: rolled back whole, the batch is made again with the dataset it committed.
            if not new_datasets or any(self._stored(key) is None for key in new_datasets):
                raise
            return self.write_batch(records, on_written)
        return run_ids

    def _add_run(self, rows: Rows, record: RunRecord, run_id: str, now: int) -> None:
        """The rows `create_run`, `log_batch` and `set_terminated` write for `record`."""
        points = record.metric_points(now)
        self._validate_metrics(points)
        tags = {MLFLOW_RUN_NAME: record.name, **record.tags, **description_tags(record, run_id)}
        tags.update(self._valid(_validate_tag, writer.result_tags(record)))
        rows.tables[SqlRun].append(
            (
                run_id,
                record.name,
                SOURCE_TYPE,
                "",
                "",
                record.tags.get(MLFLOW_USER, "unknown"),
                record.status,
                record.start_time or now,
                record.end_time or now,
                "",
                LifecycleStage.ACTIVE,
                append_to_uri_path(
                    self.artifact_location, run_id, SqlAlchemyStore.ARTIFACTS_FOLDER_NAME
                ),
                int(self.experiment_id),
            )
        )
        rows.tables[SqlTag] += [(run_id, key, value) for key, value in tags.items()]
        rows.tables[SqlParam] += [
            (run_id, key, value) for key, value in self._valid(_validate_param, record.params)
        ]
        latest: dict[str, tuple] = {}
        metric_rows = rows.tables[SqlMetric]
        # MLflow drops a point logged twice (its `Metric`s are equal as these tuples are).
        for key, value, timestamp, step in dict.fromkeys(points):
            is_nan = False
            if not -math.inf < value < math.inf:  # NaN or infinite: as the SQL store keeps them
                is_nan, value = sanitized(value)
            row = (run_id, key, value, timestamp, step, is_nan)
            metric_rows.append(row)
            # A key's latest point: the greatest (step, timestamp, value), as MLflow's.
            previous = latest.get(key)
            if previous is None or (step, timestamp, value) > (
                previous[4],
                previous[3],
                previous[2],
            ):
                latest[key] = row
        rows.tables[SqlLatestMetric] += latest.values()

    def _valid(
        self, check: Callable[[str, str, str], Param | RunTag], pairs: dict[str, str]
    ) -> list[tuple[str, str]]:
        """`pairs` as `log_batch` keeps them (`check`: MLflow's `_validate_param` or
        `_validate_tag`, which refuse a bad key and cut a long value), each distinct pair
        checked once per writer: a sweep's children share most of theirs."""
        kind = "params" if check is _validate_param else "tags"
        valid = []
        for index, pair in enumerate(pairs.items()):
            known = self.checked.get((check, pair))
            if known is None:
                checked = check(*pair, path=f"{kind}[{index}]")
                known = self.checked[(check, pair)] = (checked.key, checked.value)
            valid.append(known)
        return valid

    def _validate_metrics(self, points: list[tuple[str, float, int, int]]) -> None:
        """MLflow's `_validate_metric` (`log_batch`'s check) of each (key, value, timestamp, step)
        point, a name's own checks once per writer: they cost most of it, and a sweep's runs log
        the same names."""
        names = self.metric_names
        for index, (key, value, timestamp, step) in enumerate(points):
            # The usual point in exact types (an ABC's isinstance costs more than the rest).
            if (
                key in names
                and type(value) in (float, int)
                and type(timestamp) is int
                and timestamp >= 0
                and type(step) is int
            ):
                continue
            _validate_metric(key, value, timestamp, step, f"metrics[{index}]")
            names.add(key)

    def _add_inputs(
        self, rows: Rows, record: RunRecord, run_id: str, new_datasets: dict[tuple[str, str], str]
    ) -> None:
        """The rows `log_inputs` writes for the record's dataset input, if it has one."""
        inputs = writer.run_inputs(record)
        if not inputs:
            return
        _validate_dataset_inputs(inputs)
        # MLflow keeps the first of two inputs of the same dataset.
        unique = {(item.dataset.name, item.dataset.digest): item for item in reversed(inputs)}
        for key, item in reversed(unique.items()):
            dataset_uuid = self.datasets.get(key) or new_datasets.get(key) or self._stored(key)
            if dataset_uuid is None:
                dataset_uuid = new_datasets[key] = uuid.uuid4().hex
                rows.tables[SqlDataset].append(
                    (
                        dataset_uuid,
                        int(self.experiment_id),
                        item.dataset.name,
                        item.dataset.digest,
                        item.dataset.source_type,
                        item.dataset.source,
                        item.dataset.schema,
                        item.dataset.profile,
                    )
                )
            input_uuid = uuid.uuid4().hex
            rows.tables[SqlInput].append((input_uuid, "DATASET", dataset_uuid, "RUN", run_id, 0))
            rows.tables[SqlInputTag] += [(input_uuid, tag.key, tag.value) for tag in item.tags]

    def _stored(self, key: tuple[str, str]) -> str | None:
        """The uuid of the experiment's dataset of this name and digest, if it has one."""
        datasets = SqlDataset.__table__
        with self.engine.connect() as connection:
            dataset_uuid = connection.execute(
                sqlalchemy.select(datasets.c.dataset_uuid).where(
                    datasets.c.experiment_id == int(self.experiment_id),
                    datasets.c.name == key[0],
                    datasets.c.digest == key[1],
                )
            ).scalar()
        if dataset_uuid is not None:
            self.datasets[key] = dataset_uuid
        return dataset_uuid
