"""The store: one SQLite file by default, a shared PostgreSQL for several pollers.

Why it looks like this:
- Every writer goes through ``Store.write()``. On SQLite that is ``BEGIN IMMEDIATE``: the write
  lock is taken up front, so two processes queue behind ``busy_timeout`` instead of one failing
  with "database is locked" when a read transaction later tries to upgrade. On PostgreSQL it
  is an ordinary transaction; row locks (``lock_campaign``) serialise what must be serialised.
- Duplicates are refused by unique constraints, and ``insert_ignore`` turns a duplicate into
  "0 rows inserted" (``INSERT ... ON CONFLICT DO NOTHING``) on both dialects, so re-fetching or
  re-paying is harmless even when two pollers race.
- The schema is owned by alembic; ``open_store`` migrates to head under a lock, so the first
  run on a fresh database and concurrent starts are both safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    BigInteger,
    Engine,
    create_engine,
    func,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session, SQLModel

from campaigns.errors import CrowdError
from campaigns.store.models import Campaign, LedgerEntry, PollCursor, money_from_micros, utcnow
from campaigns.store.settings import Settings
from campaigns.store.sqlite import WRITE as _WRITE
from campaigns.store.sqlite import sqlite_engine as _sqlite_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK = 0x63726F7764  # pg_advisory_xact_lock key ("crowd")


def normalize_url(url: str) -> URL:
    """Parse a database URL; ``postgresql://`` / ``postgres://`` become ``postgresql+psycopg://``
    (the task server's rule, one for both databases)."""
    from taskserver.db import DatabaseURLError
    from taskserver.db import normalize_url as parse

    try:
        return parse(url)
    except DatabaseURLError as exc:
        raise CrowdError(str(exc)) from None


def open_store(url: str | None = None) -> Store:
    """Open (and migrate to head) the store at ``url``, else ``CROWD_DATABASE_URL``, else ./crowd.db."""
    u = normalize_url(url or Settings().database_url)
    engine = _sqlite_engine(u) if u.get_backend_name() == "sqlite" else create_engine(u, pool_pre_ping=True)
    try:
        migrate(engine)
    except DatabaseError as exc:  # OperationalError, or a file that is not a database at all
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise CrowdError(f"cannot open database {u.render_as_string(hide_password=True)}: {reason}") from None
    return Store(engine)


def migrate(engine: Engine) -> None:
    """Upgrade the schema to head, holding the database's write lock so racing starts queue up."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.execution_options(**{_WRITE: True}).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Store:
    """A migrated database and the few operations whose correctness depends on the dialect."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name  # "sqlite" | "postgresql"
        self._write_engine = engine.execution_options(**{_WRITE: True})

    def __repr__(self) -> str:  # the URL's password is masked by SQLAlchemy
        return f"Store({self.engine.url!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction for reading; commits on success, rolls back on error. Write with ``write()``."""
        with self._transaction(self.engine) as s:
            yield s

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction that holds SQLite's write lock from its first statement."""
        with self._transaction(self._write_engine) as s:
            yield s

    @contextmanager
    def _transaction(self, bind: Engine) -> Iterator[Session]:
        with Session(bind, expire_on_commit=False) as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    # ------------------------------------------------------------------ idempotent inserts
    def insert_ignore(self, session: Session, model_cls: type[SQLModel], rows: list[dict[str, Any]],
                      conflict_cols: Sequence[str] | None = None,
                      order: Sequence[str] | None = None) -> int:
        """Insert rows, skipping those that hit a unique constraint; return how many were inserted.

        ``conflict_cols`` names the unique constraint to check (``None``: any). Missing columns get
        the model's defaults (timestamps, JSON defaults). One cached statement is executed for all
        rows (SQLAlchemy batches it into multi-row INSERTs) and the inserted rows are counted from
        ``RETURNING``. Rows go in ``order`` (default ``conflict_cols``) order, so two PostgreSQL
        transactions inserting overlapping batches take their row locks in the same order and cannot
        deadlock; any columns whose values a row always has work, and the order is also the order of
        the new primary keys.
        """
        return len(self.insert_new(session, model_cls, rows, conflict_cols, order))

    def insert_new(self, session: Session, model_cls: type[SQLModel], rows: list[dict[str, Any]],
                   conflict_cols: Sequence[str] | None = None, order: Sequence[str] | None = None,
                   returning: Sequence[str] | None = None) -> list[Any]:
        """``insert_ignore`` that returns the inserted rows' ``returning`` columns (default: the
        primary key), so a caller needs no second read to learn which rows are new and their ids."""
        if not rows:
            return []
        table = model_cls.__table__  # type: ignore[attr-defined]
        values = _with_defaults(model_cls, table, rows)
        if order or conflict_cols:
            values.sort(key=lambda v: tuple(str(v.get(c)) for c in (order or conflict_cols)))
        insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        target = list(conflict_cols) if conflict_cols else None
        stmt = insert(table).on_conflict_do_nothing(index_elements=target)
        cols = [table.c[c] for c in returning] if returning else list(table.primary_key.columns)
        stmt = stmt.returning(*cols)
        return list(session.execute(stmt, values).all())

    def add_counts(self, session: Session, model_cls: type[SQLModel], rows: list[dict[str, Any]],
                   key_cols: Sequence[str], count_cols: Sequence[str]) -> None:
        """Add each row's ``count_cols`` to the row with its ``key_cols`` (inserted if missing), in one
        upsert: two transactions adding to the same counters both count, on either dialect. Rows go
        in key order, so concurrent adders lock rows in one order and cannot deadlock."""
        merged: dict[tuple, dict[str, Any]] = {}  # one row per key: an upsert may not touch a row twice
        for r in rows:
            k = tuple(r[c] for c in key_cols)
            if k in merged:
                for c in count_cols:
                    merged[k][c] += r[c]
            else:
                merged[k] = dict(r)
        if not merged:
            return
        table = model_cls.__table__  # type: ignore[attr-defined]
        values = sorted(_with_defaults(model_cls, table, list(merged.values())),
                        key=lambda v: tuple(str(v[c]) for c in key_cols))
        insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        stmt = insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=list(key_cols),
                                          set_={c: table.c[c] + stmt.excluded[c] for c in count_cols})
        session.execute(stmt, values)

    # ------------------------------------------------------------------ poll leases
    def acquire_lease(self, stage_id: int, owner: str, seconds: float, *, shard: int = 0,
                      now: datetime | None = None) -> bool:
        """Take or renew the poll lease of one shard of the stage (shard 0: also the stage's own);
        False if another owner holds an unexpired one.

        One conditional UPDATE decides, so two pollers can never both win, on either dialect.
        ``now`` is for tests; leases compare clocks of the machines involved (UTC).
        """
        now = (now or utcnow()).astimezone(UTC)
        t = PollCursor.__table__  # type: ignore[attr-defined]
        with self.write() as s:
            self.insert_ignore(s, PollCursor, [{"stage_id": stage_id, "shard": shard, "updated_at": now}],
                               ["stage_id", "shard"])
            taken = s.execute(
                update(t)
                .where(t.c.stage_id == stage_id, t.c.shard == shard,
                       or_(t.c.lease_owner.is_(None), t.c.lease_until.is_(None), t.c.lease_until < now,
                           t.c.lease_owner == owner))
                .values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds), updated_at=now))
            return taken.rowcount == 1

    def release_lease(self, stage_id: int, owner: str, *, shard: int = 0) -> bool:
        """Give the lease back (only if ``owner`` holds it) so the next poller need not wait it out."""
        t = PollCursor.__table__  # type: ignore[attr-defined]
        with self.write() as s:
            released = s.execute(
                update(t).where(t.c.stage_id == stage_id, t.c.shard == shard, t.c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None, updated_at=utcnow()))
            return released.rowcount == 1

    # ------------------------------------------------------------------ budget checks
    def lock_campaign(self, session: Session, campaign_id: int) -> Campaign:
        """Serialise spending on one campaign until ``session`` ends (read budget, then write).

        PostgreSQL: ``SELECT ... FOR UPDATE`` on the campaign row. SQLite: the ``write()``
        transaction already holds the database's only write lock.
        """
        if not session.connection().get_execution_options().get(_WRITE):
            raise RuntimeError("lock_campaign needs a Store.write() session")
        stmt = select(Campaign).where(Campaign.id == campaign_id).execution_options(populate_existing=True)
        if self.dialect == "postgresql":
            stmt = stmt.with_for_update()
        campaign = session.scalars(stmt).first()
        if campaign is None:
            raise CrowdError(f"no campaign with id {campaign_id}")
        return campaign

    def ledger_sum(self, session: Session, campaign_id: int, kinds: Iterable[str] | None = None,
                   states: Iterable[str] | None = None) -> Decimal:
        """Exact total of ledger amounts (summed as integer micro-units in SQL); ``None`` = any."""
        t = LedgerEntry.__table__  # type: ignore[attr-defined]
        stmt = select(func.coalesce(func.sum(type_coerce(t.c.amount, BigInteger)), 0)).where(
            t.c.campaign_id == campaign_id)
        if kinds is not None:
            stmt = stmt.where(t.c.kind.in_(list(kinds)))
        if states is not None:
            stmt = stmt.where(t.c.state.in_(list(states)))
        return money_from_micros(int(session.execute(stmt).scalar_one()))


def _with_defaults(model_cls: type[SQLModel], table: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Full column dicts (same keys in every row, as one executemany needs), defaults filled in."""
    columns = [c.key for c in table.columns]
    unknown = set().union(*rows) - set(columns)
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {sorted(unknown)}")
    pk = {c.key for c in table.primary_key.columns}
    if not all(row.get(k) is not None for row in rows for k in pk):
        columns = [c for c in columns if c not in pk]  # let the database number them
    fields = model_cls.model_fields
    out = []
    for row in rows:
        full = dict(row)
        for name in columns:
            if name not in full:
                field = fields[name]
                if field.is_required():
                    raise ValueError(f"{table.name}: missing required column {name!r}")
                full[name] = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        out.append({name: full[name] for name in columns})
    return out
