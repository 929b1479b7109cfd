"""A store that fills while a test's `python src/train.py` runs (tests/tracking/test_full_disk.py).

On `PYTHONPATH`, Python imports this module as the process starts. Once the file named by
`GATELAB_TEST_FULL_STORE` exists, each SQLite connection of the process's SQLAlchemy engines
(MLflow's, the bulk writer's) finds the store full, as SQLite reports it: with the file's text
`grow`, the store cannot grow (SQLite's own `max_page_count` at its size then: a run's status
changes in place, new rows fail); with `write`, no write succeeds, as on a full disk where the
write-ahead log cannot grow either (what a real full tmpfs did).
"""

import os
import sqlite3

TRIGGER = os.environ.get("GATELAB_TEST_FULL_STORE")
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")

if TRIGGER:
    import sqlalchemy

    def _full(connection, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ANN202
        try:
            with open(TRIGGER) as file:
                mode = file.read().strip()
        except FileNotFoundError:
            return statement, parameters
        if mode == "write" and statement.lstrip().upper().startswith(WRITES):
            raise sqlite3.OperationalError("database or disk is full")
        if mode == "grow" and not connection.info.get("full"):
            (pages,) = cursor.execute("PRAGMA page_count").fetchone()
            cursor.execute(f"PRAGMA max_page_count = {pages}")
            connection.info["full"] = True
        return statement, parameters

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", _full, retval=True)
