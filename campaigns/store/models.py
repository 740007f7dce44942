"""The store's tables (sqlmodel).

Why these shapes: every raw answer is kept verbatim (``Assignment.raw``); unique constraints,
not application checks, make double ingestion and double payment impossible:
``(provider, assignment_id)`` on assignments, ``idempotency_key`` on publications, ledger
entries and worker actions. Money is stored as integer micro-units (``MoneyType``) so it is
exact and summable in SQL on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Column, DateTime, Text, UniqueConstraint, false
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

MICROS = Decimal("1000000")

# Stable constraint names on every dialect, so later migrations can drop or alter them by name
# (SQLite's batch mode needs names). Set before any table below is declared.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class MoneyType(TypeDecorator):
    """Decimal <-> integer micro-units (1e-6 of the currency unit)."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect) -> int | None:
        if value is None:
            return None
        micros = Decimal(value) * MICROS
        if micros != micros.to_integral_value():
            raise ValueError(f"money value {value} has more than 6 decimal places")
        return int(micros)

    def process_result_value(self, value: int | None, dialect) -> Decimal | None:
        return None if value is None else (Decimal(value) / MICROS).normalize() + Decimal("0.00")


def money_from_micros(value: int | None) -> Decimal:
    """For SQL aggregates (SUM) over MoneyType columns, which come back as plain integers."""
    return (Decimal(value or 0) / MICROS).normalize() + Decimal("0.00")


def _money(**kw) -> Any:
    return Field(default=Decimal("0"), sa_column=Column(MoneyType(), nullable=False, **kw))


def _json(default=None) -> Any:
    return Field(default_factory=(lambda: default() if callable(default) else default),
                 sa_column=Column(JSON, nullable=True))


def _ts(nullable: bool = True, default_now: bool = False) -> Any:
    if default_now:
        return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


class Campaign(SQLModel, table=True):
    __tablename__ = "campaigns"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    provider: str
    environment: str
    endpoint_url: str | None = None
    kind: str
    status: str = "active"  # active | done | failed
    spec_yaml: str = Field(sa_column=Column(Text, nullable=False))
    spec_hash: str
    budget_cap: Decimal | None = Field(default=None, sa_column=Column(MoneyType(), nullable=True))
    currency: str = "USD"
    created_at: datetime = _ts(default_now=True)


class Stage(SQLModel, table=True):
    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("campaign_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaigns.id", index=True)
    name: str  # e.g. compare | find | fix | verify
    kind: str
    status: str = "planned"  # planned | open | done
    batch_idempotency_key: str = Field(unique=True)
    batch_ref: dict | None = _json()
    reward: Decimal = _money()  # per page assignment
    assignments_per_page: int = 1
    max_assignments_per_page: int = 1
    settings: dict | None = _json(dict)
    created_at: datetime = _ts(default_now=True)
    closed_at: datetime | None = _ts()


class Item(SQLModel, table=True):
    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("campaign_id", "external_id"),)
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaigns.id", index=True)
    external_id: str
    payload: dict = _json(dict)
    result: dict | None = _json()  # assembled outcome (e.g. FFV revised text)


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("stage_id", "key"),)
    id: int | None = Field(default=None, primary_key=True)
    stage_id: int = Field(foreign_key="stages.id", index=True)
    item_id: int | None = Field(default=None, foreign_key="items.id", index=True)
    key: str = Field(index=True)  # short opaque id shown to the connector as item_key
    key_hint: str = ""
    payload: dict = _json(dict)
    golden: bool = False
    golden_answer: dict | None = _json()
    page_id: int | None = Field(default=None, foreign_key="pages.id", index=True)
    result: dict | None = _json()


class Page(SQLModel, table=True):
    __tablename__ = "pages"
    id: int | None = Field(default=None, primary_key=True)
    stage_id: int = Field(foreign_key="stages.id", index=True)
    page_key: str = Field(unique=True)
    task_keys: list = _json(list)
    status: str = "planned"  # planned | published | extending | done
    assignments: int = 1
    # a follow-up page (adaptive overlap) asks again for items first shown on other pages
    follow_up: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    # the batch's named lane the page is published to (``connectors.base.BatchSpec.lanes``): "trusted"
    # for follow-up pages, "probation" for probe pages; None for the batch's own HIT type or pool
    lane: str | None = None


class Publication(SQLModel, table=True):
    """A page as it exists on the marketplace. The idempotency key goes to the provider too."""

    __tablename__ = "publications"
    id: int | None = Field(default=None, primary_key=True)
    page_id: int = Field(foreign_key="pages.id", unique=True)
    provider: str
    provider_ref: str = Field(index=True)
    idempotency_key: str = Field(unique=True)
    created_at: datetime = _ts(default_now=True)


class Assignment(SQLModel, table=True):
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("provider", "assignment_id"),)
    id: int | None = Field(default=None, primary_key=True)
    provider: str
    assignment_id: str
    stage_id: int = Field(foreign_key="stages.id", index=True)
    page_id: int | None = Field(default=None, foreign_key="pages.id", index=True)
    page_ref: str
    worker_id: str = Field(index=True)
    provider_status: str  # submitted | approved | rejected, as fetched
    review: str = "pending"  # pending | approved | rejected
    review_message: str | None = None
    accepted_at: datetime | None = _ts()
    submitted_at: datetime | None = _ts()
    raw: str = Field(sa_column=Column(Text, nullable=False))
    answers: dict = _json(dict)
    parse_error: str | None = None
    fetched_at: datetime = _ts(default_now=True)


class Judgement(SQLModel, table=True):
    """One worker's answer to one task, parsed by the task kind (or marked invalid)."""

    __tablename__ = "judgements"
    __table_args__ = (UniqueConstraint("assignment_pk", "task_id"),)
    id: int | None = Field(default=None, primary_key=True)
    assignment_pk: int = Field(foreign_key="assignments.id", index=True)
    task_id: int = Field(foreign_key="tasks.id", index=True)
    stage_id: int = Field(foreign_key="stages.id", index=True)
    worker_id: str = Field(index=True)
    value: dict | None = _json()
    valid: bool = True
    error: str | None = None
    golden_correct: bool | None = None


class Worker(SQLModel, table=True):
    __tablename__ = "workers"
    __table_args__ = (UniqueConstraint("provider", "worker_id"),)
    id: int | None = Field(default=None, primary_key=True)
    provider: str
    worker_id: str
    first_seen: datetime = _ts(default_now=True)
    blocked: bool = False
    screening_score: int | None = None


class WorkerScore(SQLModel, table=True):
    __tablename__ = "worker_scores"
    id: int | None = Field(default=None, primary_key=True)
    provider: str
    worker_id: str = Field(index=True)
    campaign_id: int | None = Field(default=None, foreign_key="campaigns.id", index=True)
    trust: float
    parts: dict = _json(dict)
    evidence: dict = _json(dict)
    computed_at: datetime = _ts(default_now=True)


class PoolMember(SQLModel, table=True):
    __tablename__ = "pool_members"
    __table_args__ = (UniqueConstraint("provider", "pool", "worker_id"),)
    id: int | None = Field(default=None, primary_key=True)
    provider: str
    pool: str
    worker_id: str
    score: int = 1
    active: bool = True


class WorkerAction(SQLModel, table=True):
    """block / unblock / grant / revoke, kept with its evidence; retried until done."""

    __tablename__ = "worker_actions"
    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True)
    provider: str
    worker_id: str = Field(index=True)
    campaign_id: int | None = Field(default=None, foreign_key="campaigns.id")
    action: str
    pool: str | None = None
    reason: str = ""
    evidence: dict = _json(dict)
    state: str = "planned"  # planned | done | failed
    error: str | None = None
    created_at: datetime = _ts(default_now=True)


class LedgerEntry(SQLModel, table=True):
    __tablename__ = "ledger"
    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True)
    campaign_id: int = Field(foreign_key="campaigns.id", index=True)
    stage_id: int | None = Field(default=None, foreign_key="stages.id", index=True)
    provider: str
    kind: str  # reward | bonus | fee
    amount: Decimal = _money()
    currency: str = "USD"
    state: str = "planned"  # planned | sent | confirmed | failed
    worker_id: str | None = Field(default=None, index=True)
    assignment_id: str | None = None
    provider_ref: str | None = None
    reason: str | None = None
    created_at: datetime = _ts(default_now=True)
    updated_at: datetime = _ts(default_now=True)


class PollCursor(SQLModel, table=True):
    """Where a stage's incremental fetch stands, and who holds the stage's poll lease."""

    __tablename__ = "poll_cursors"
    id: int | None = Field(default=None, primary_key=True)
    stage_id: int = Field(foreign_key="stages.id", unique=True)
    cursor: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    lease_owner: str | None = None
    lease_until: datetime | None = _ts()
    updated_at: datetime = _ts(default_now=True)
