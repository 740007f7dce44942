"""``crowd poll``: fetch what is new, keep it, review it, pay for it, finish what is done.

Each step is idempotent on its own, so a poll killed between any two steps and run again
ends in the same state as one that was never interrupted:
- fetch + ingest: the new assignments, their judgements and the advanced cursor are written in
  one transaction; a lost transaction means the same answers are fetched again and
  ``INSERT .. ON CONFLICT DO NOTHING`` keeps one copy;
- review: the decision is recorded (``review='approving'``) before the marketplace call and
  the ledger entries (unique idempotency keys) after it; a replay asks the marketplace what
  happened instead of calling twice;
- a stage lease (one row per stage) keeps two pollers off the same stage at once.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlmodel import select

from campaigns.connect import connector_for
from campaigns.errors import CrowdError
from campaigns.ingest import ingest
from campaigns.models import Campaign, PollCursor, Stage
from campaigns.quality import apply_quality
from campaigns.review import review_stage
from campaigns.stages import advance
from campaigns.store import Store
from connectors.base import BatchRef, Connector

Progress = Callable[[str, int, int], None]


@dataclass
class StagePoll:
    campaign: str
    stage: str
    fetched: int = 0
    new: int = 0
    approved: int = 0
    rejected: int = 0
    blocked: int = 0
    pages_done: int = 0
    pages: int = 0
    status: str = "open"
    skipped: str | None = None


@dataclass
class PollReport:
    stages: list[StagePoll] = field(default_factory=list)
    api_calls: dict[str, int] = field(default_factory=dict)
    all_done: bool = False

    def summary_line(self) -> str:
        if not self.stages:
            return "nothing to poll"
        parts = []
        for s in self.stages:
            if s.skipped:
                parts.append(f"{s.campaign}/{s.stage}: skipped ({s.skipped})")
            else:
                parts.append(f"{s.campaign}/{s.stage}: {s.new} new, {s.approved} approved, {s.rejected} rejected, "
                             f"{s.blocked} blocked, pages {s.pages_done}/{s.pages}, {s.status}")
        return "; ".join(parts)


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def poll(store: Store, campaign: str | None = None, *, endpoint: str | None = None,
         connector: Connector | None = None, progress: Progress | None = None, owner: str | None = None,
         lease_seconds: int = 600) -> PollReport:
    owner = owner or default_owner()
    report = PollReport()
    with store.session() as s:
        q = select(Campaign)
        if campaign is not None:
            q = q.where(Campaign.name == campaign)
        else:
            q = q.where(Campaign.status == "active")
        campaigns = s.exec(q.order_by(Campaign.id)).all()
    if campaign is not None and not campaigns:
        raise CrowdError(f"no campaign named {campaign!r}")
    calls: dict[str, int] = {}
    for c in campaigns:
        conn = connector or connector_for(c.provider, c.environment, endpoint or c.endpoint_url)
        before = dict(conn.calls)
        _poll_campaign(store, conn, c, report, owner, lease_seconds, progress)
        for op, n in conn.calls.items():
            calls[op] = calls.get(op, 0) + n - before.get(op, 0)
    report.api_calls = calls
    with store.session() as s:
        names = [c.name for c in campaigns]
        report.all_done = all(s.exec(select(Campaign.status).where(Campaign.name == n)).one() == "done"
                              for n in names)
    return report


def _poll_campaign(store: Store, conn: Connector, campaign: Campaign, report: PollReport, owner: str,
                   lease_seconds: int, progress: Progress | None) -> None:
    with store.session() as s:
        stages = s.exec(select(Stage).where(Stage.campaign_id == campaign.id, Stage.status == "open")
                        .order_by(Stage.id)).all()
    for stage in stages:
        sp = StagePoll(campaign=campaign.name, stage=stage.name)
        report.stages.append(sp)
        if not store.acquire_lease(stage.id, owner, lease_seconds):
            sp.skipped = "another poller holds this stage"
            continue
        try:
            poll_stage(store, conn, campaign, stage, sp, progress)
        finally:
            store.release_lease(stage.id, owner)
    advance(store, conn, campaign.id)


def poll_stage(store: Store, conn: Connector, campaign: Campaign, stage: Stage, sp: StagePoll,
               progress: Progress | None = None) -> None:
    ref = BatchRef.model_validate(stage.batch_ref)
    with store.session() as s:
        row = s.exec(select(PollCursor).where(PollCursor.stage_id == stage.id)).first()
        cursor = row.cursor if row else None
    result = conn.fetch(ref, cursor)
    sp.fetched = len(result.assignments)
    sp.new = ingest(store, campaign, stage, result)
    if progress:
        progress(f"{stage.name}: ingest", sp.fetched, sp.fetched)
    sp.approved, sp.rejected = review_stage(store, conn, campaign, stage, progress=progress)
    sp.blocked = apply_quality(store, conn, campaign, stage)
    from campaigns.stages import refresh_pages

    sp.pages_done, sp.pages = refresh_pages(store, stage.id, finished_refs=result.finished_pages)
    with store.session() as s:
        sp.status = s.get(Stage, stage.id).status
