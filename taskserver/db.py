"""The task server's database: SQLite file by default, PostgreSQL by URL, schema owned by Alembic.

The server is one process, so its writes are serialised by one lock (``Database.write``): a page
cannot be reserved twice past its places, nor a submission taken twice, whatever the database.
Each write commits before the response is sent, so whatever a worker or requester was told was
stored survives the server being killed (SQLite in WAL mode; a process kill loses nothing committed).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

MIGRATIONS = Path(__file__).parent / "migrations"


class DatabaseURLError(ValueError):
    """Not a database URL the server can use."""


def normalize_url(url: str) -> URL:
    try:
        u = make_url(url)
    except ArgumentError:
        raise DatabaseURLError(f"not a database URL: {url.split('://')[0]}://...") from None
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseURLError(f"unsupported database {u.drivername!r}: use sqlite:/// or postgresql://")
    return u


class Database:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.lock = threading.RLock()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s:
            yield s

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction under the server's write lock; committed when the block ends."""
        with self.lock, Session(self.engine, expire_on_commit=False) as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def close(self) -> None:
        self.engine.dispose()


def open_database(url: str) -> Database:
    """Open the database at ``url`` and migrate it to the newest schema."""
    u = normalize_url(url)
    if u.get_backend_name() == "sqlite":
        engine = create_engine(u, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout = 30000")
            if u.database not in (None, "", ":memory:"):
                cur.execute("PRAGMA journal_mode = WAL")
                cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.close()
    else:
        engine = create_engine(u, pool_pre_ping=True)
    migrate(engine)
    return Database(engine)


def migrate(engine: Engine) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(742117)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
