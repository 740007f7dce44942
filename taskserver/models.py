"""The task server's own tables (its marketplace database, apart from crowdbridge's store).

Ids handed out are short random strings with a kind prefix (``W`` worker, ``P`` pool, ``B`` batch,
``L`` lane, ``G`` page, ``S`` assignment, ``X`` bonus). Money is text holding a ``Decimal``, so
SQLite and PostgreSQL keep it exactly. Secrets (invite tokens, session ids) are kept only as
SHA-256 hashes. ``Assignment.seq`` numbers submissions in order: the requester API's cursor.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, MetaData, String, Text, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Money(TypeDecorator):
    """A ``Decimal`` stored as text: exact on every database."""

    impl = String(32)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else str(Decimal(value))

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(value)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on SQLite too (which keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        from datetime import UTC

        return value.astimezone(UTC).replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        from datetime import UTC

        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s", "pk": "pk_%(table_name)s"})


class Worker(Base):
    __tablename__ = "workers"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class Invite(Base):
    __tablename__ = "invites"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    worker_id: Mapped[str] = mapped_column(ForeignKey("workers.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class WebSession(Base):
    """A browser session: a worker's (``worker_id``) or the ops view's (``worker_id`` None)."""

    __tablename__ = "sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    worker_id: Mapped[str | None] = mapped_column(ForeignKey("workers.id"), default=None, index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Pool(Base):
    """A named worker pool; with ``screening`` set it is a screening test's pool (passers join it)."""

    __tablename__ = "pools"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    screening: Mapped[dict | None] = mapped_column(JSON(none_as_null=True), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Member(Base):
    __tablename__ = "pool_members"
    pool_id: Mapped[str] = mapped_column(ForeignKey("pools.id"), primary_key=True)
    worker_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    score: Mapped[int] = mapped_column(Integer, default=1)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ScreeningAttempt(Base):
    __tablename__ = "screening_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pool_id: Mapped[str] = mapped_column(ForeignKey("pools.id"), index=True)
    worker_id: Mapped[str] = mapped_column(String(40), index=True)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    score: Mapped[int] = mapped_column(Integer)
    passed: Mapped[bool]
    answers: Mapped[dict] = mapped_column(JSON)


class Block(Base):
    __tablename__ = "blocks"
    worker_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Batch(Base):
    __tablename__ = "batches"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    spec: Mapped[dict] = mapped_column(JSON)  # title, description, instructions, kind, timings
    reward: Mapped[Decimal] = mapped_column(Money())
    assignments_per_page: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class Lane(Base):
    """Where a batch's pages wait: its own lane (``name`` "") or a named one with extra requirements."""

    __tablename__ = "lanes"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"), index=True)
    name: Mapped[str] = mapped_column(String(60), default="")
    requirements: Mapped[list] = mapped_column(JSON)  # [{"pool_id", "min_score", "exclude"}]
    # A lane served as a Prolific study: participants arrive with its id and are completed with the code.
    study_id: Mapped[str | None] = mapped_column(String(40), default=None)
    completion_code: Mapped[str | None] = mapped_column(String(40), default=None)


class PageRow(Base):
    __tablename__ = "pages"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, unique=True)  # publication order: the queue's order
    lane_id: Mapped[str] = mapped_column(ForeignKey("lanes.id"), index=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    external_id: Mapped[str] = mapped_column(String(200), index=True)  # the requester's page_id
    items: Mapped[list] = mapped_column(JSON)
    assignments: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The queue reads only these columns: an index holding them all spares reading the (large) items.
    __table_args__ = (Index("ix_pages_queue", "lane_id", "n", "id", "assignments", "expires_at", "stopped_at"),)


class PageItemRow(Base):
    """One item of a page, by the requester's key: so no worker is given a real item twice."""

    __tablename__ = "page_items"
    page_id: Mapped[str] = mapped_column(ForeignKey("pages.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_key: Mapped[str] = mapped_column(String(200), index=True)
    golden: Mapped[bool]


class Assignment(Base):
    """A page taken by a worker: ``reserved`` until ``deadline``, then ``submitted``, then reviewed
    (``approved`` / ``rejected``); or ``released`` (handed back). A reservation past its deadline
    holds no place (it is not rewritten: the deadline says it)."""

    __tablename__ = "assignments"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    page_id: Mapped[str] = mapped_column(ForeignKey("pages.id"), index=True)
    worker_id: Mapped[str] = mapped_column(String(40), index=True)
    state: Mapped[str] = mapped_column(String(16))
    reserved_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    raw: Mapped[str | None] = mapped_column(Text, default=None)  # the form as received, JSON of its pairs
    answers: Mapped[dict | None] = mapped_column(JSON, default=None)
    seq: Mapped[int | None] = mapped_column(Integer, unique=True, default=None)
    # A Prolific participant's page: the submission (SESSION_ID) it answers, and whether Prolific has
    # been told it is complete ("pending" until the server-side completion call succeeded, "completed").
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    external_state: Mapped[str | None] = mapped_column(String(16), default=None, index=True)
    __table_args__ = (Index("ix_assignments_worker_page", "worker_id", "page_id"),)


class Bonus(Base):
    __tablename__ = "bonuses"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    worker_id: Mapped[str] = mapped_column(String(40), index=True)
    assignment_id: Mapped[str] = mapped_column(ForeignKey("assignments.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money())
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
