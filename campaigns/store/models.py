"""The store's tables (sqlmodel).

Why these shapes: every raw answer is kept verbatim (``Assignment.raw``); unique constraints,
not application checks, make double ingestion and double payment impossible:
``(provider, assignment_id)`` on assignments, ``idempotency_key`` on publications, ledger
entries and worker actions. Money is stored as integer micro-units (``MoneyType``) so it is
exact and summable in SQL on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, Column, Index, Text, UniqueConstraint, false, text
from sqlmodel import Field, SQLModel

# MoneyType, money_from_micros and utcnow are read from here by the rest of campaigns too
from campaigns.store.columns import MoneyType, _json, _money, _ts, money_from_micros, utcnow  # noqa: F401


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
    # a poll reads the stage's open pages (status != 'done'): a partial index keeps that read the size
    # of what is open; (stage_id, status) serves one status (e.g. "extending") and replaces the index
    # on stage_id alone, its prefix, which SQLite would otherwise walk for such a read
    __table_args__ = (Index("ix_pages_open", "stage_id", "status", sqlite_where=text("status != 'done'"),
                            postgresql_where=text("status != 'done'")),
                      Index("ix_pages_stage_id_status", "stage_id", "status"))
    id: int | None = Field(default=None, primary_key=True)
    stage_id: int = Field(foreign_key="stages.id")
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
    # (stage_id, review): review and finish read only the stage's unreviewed assignments. It replaces
    # the index on stage_id alone (its prefix), which SQLite would pick to read a stage in id order.
    __table_args__ = (UniqueConstraint("provider", "assignment_id"), Index("ix_assignments_stage_id_review",
                                                                            "stage_id", "review"))
    id: int | None = Field(default=None, primary_key=True)
    provider: str
    assignment_id: str
    stage_id: int = Field(foreign_key="stages.id")
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
    __table_args__ = (UniqueConstraint("assignment_pk", "task_id"),
                      Index("ix_judgements_stage_id_tallied", "stage_id", "tallied"))
    id: int | None = Field(default=None, primary_key=True)
    assignment_pk: int = Field(foreign_key="assignments.id", index=True)
    task_id: int = Field(foreign_key="tasks.id", index=True)
    stage_id: int = Field(foreign_key="stages.id", index=True)
    worker_id: str = Field(index=True)
    value: dict | None = _json()
    valid: bool = True
    error: str | None = None
    golden_correct: bool | None = None
    label: str | None = None  # the categorical label (quality.labels.label_of), so fits read no JSON
    tallied: bool = Field(default=False, sa_column_kwargs={"server_default": false()})  # in WorkerTally yet


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


class WorkerTally(SQLModel, table=True):
    """Per campaign and worker, trust evidence that only grows, counted from each judgement once
    (``quality.tallies``): a poll adds what is new instead of re-reading the campaign."""

    __tablename__ = "worker_tallies"
    __table_args__ = (UniqueConstraint("campaign_id", "worker_id"),)
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaigns.id")
    provider: str = Field(index=True)
    worker_id: str = Field(index=True)
    judgements: int = 0
    golden_correct: int = 0
    golden_total: int = 0
    left: int = 0  # pairwise choices of the left answer, on non-golden tasks
    pairs: int = 0  # pairwise choices, on non-golden tasks
    timed: int = 0  # assignments with both times
    timed_items: int = 0  # their items


class WorkerSpeed(SQLModel, table=True):
    """Per campaign, worker and speed bucket (seconds per item on a 1/8-octave scale), how many
    assignments: a median kept by adding (``quality.tallies.median``), within 4.5%."""

    __tablename__ = "worker_speeds"
    __table_args__ = (UniqueConstraint("campaign_id", "worker_id", "bucket"),)
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaigns.id")
    worker_id: str
    bucket: int
    n: int = 0


class StageFit(SQLModel, table=True):
    """A stage's last agreement fit (``quality.agreement``): on how many labels, leaving out which
    blocked workers, and per worker (matches, tasks). Refit when the labels grew enough since."""

    __tablename__ = "stage_fits"
    id: int | None = Field(default=None, primary_key=True)
    stage_id: int = Field(foreign_key="stages.id", unique=True)
    labels: int = 0  # valid labelled judgements tallied so far
    fitted_labels: int = -1  # ``labels`` when last fitted (-1: never)
    blocked: list = _json(list)
    agreement: dict = _json(dict)
    fitted_at: datetime | None = _ts()


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
    # planned spend and bonuses still to pay are read by (campaign or stage, state, kind), not over
    # every entry; these replace the one-column indexes (prefixes), so SQLite cannot pick those instead
    __table_args__ = (Index("ix_ledger_campaign_id_state_kind", "campaign_id", "state", "kind"),
                      Index("ix_ledger_stage_id_state_kind", "stage_id", "state", "kind"))
    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True)
    campaign_id: int = Field(foreign_key="campaigns.id")
    stage_id: int | None = Field(default=None, foreign_key="stages.id")
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
    """Where one shard of a stage's pages stands in its incremental fetch, and who holds its poll
    lease (``stages.shards``). Shard 0's lease is also the stage's: its holder runs the stage-wide
    steps. ``shards``, fixed on the first poll, is how many shards the stage's pages are split into."""

    __tablename__ = "poll_cursors"
    __table_args__ = (UniqueConstraint("stage_id", "shard"),)
    id: int | None = Field(default=None, primary_key=True)
    stage_id: int = Field(foreign_key="stages.id")
    shard: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    shards: int | None = None
    cursor: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    lease_owner: str | None = None
    lease_until: datetime | None = _ts()
    updated_at: datetime = _ts(default_now=True)
