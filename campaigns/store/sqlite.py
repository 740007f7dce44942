"""A SQLite store's engine: WAL, a busy timeout, foreign keys, and ``BEGIN IMMEDIATE`` for writes
(``Store.write()``), so two writers queue on the database's lock instead of failing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.pool import StaticPool

BUSY_TIMEOUT_S = 30.0
WRITE = "crowd_write"  # execution option marking a Store.write() connection


def sqlite_engine(u: URL) -> Engine:
    memory = u.database in (None, "", ":memory:")
    engine = create_engine(
        u,
        # isolation_level=None: the driver emits no BEGIN of its own; the "begin" hook below does.
        connect_args={"timeout": BUSY_TIMEOUT_S, "isolation_level": None, "check_same_thread": False},
        poolclass=StaticPool if memory else None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if not memory:
            _set_wal(cur)
            cur.execute("PRAGMA synchronous = NORMAL")  # durable enough in WAL mode, much faster
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

    return engine


def _set_wal(cur: Any) -> None:
    """Switch to WAL. Two processes opening a new file at once race for the exclusive lock this
    needs, and SQLite answers "database is locked" without waiting on the busy timeout, so wait
    here instead (bounded by the same timeout)."""
    import sqlite3
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
