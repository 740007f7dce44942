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

from campaigns.adaptive.overlap import ask_again, finish_extensions
from campaigns.adaptive.probation import close_probes, open_probes
from campaigns.engine.finish import finish_stages
from campaigns.errors import CrowdError
from campaigns.money.bonuses import pay_bonuses
from campaigns.money.review import review_stage
from campaigns.quality.trust import apply_quality
from campaigns.stages.ingest import ingest
from campaigns.stages.pages import page_refs, refresh_pages
from campaigns.stages.publish import release_wave
from campaigns.store.checkpoints import checkpoint
from campaigns.store.connect import connector_for
from campaigns.store.database import Store
from campaigns.store.models import Campaign, PollCursor, Stage
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
    bonuses: int = 0
    extended: int = 0  # pages given more assignments (a per-item stage graph's top-ups)
    follow_ups: int = 0  # follow-up pages published for unsettled items (adaptive overlap)
    probes: int = 0  # golden-only probe pages published for suspects (campaigns.adaptive.probation)
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
                asked = f", {s.follow_ups} follow-up pages" if s.follow_ups else ""
                asked += f", {s.probes} probe pages" if s.probes else ""
                parts.append(f"{s.campaign}/{s.stage}: {s.new} new, {s.approved} approved, {s.rejected} rejected, "
                             f"{s.blocked} blocked{asked}, pages {s.pages_done}/{s.pages}, {s.status}")
        return "; ".join(parts)


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _dead_local_owner(owner: str | None) -> bool:
    """Whether ``owner`` (``host:pid:nonce``) is a process on this machine that no longer runs."""
    host, _, rest = (owner or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _take_lease(store: Store, stage_id: int, owner: str, seconds: float) -> bool:
    """Take the stage's lease. A lease left by a poller on this machine that was killed is
    released first, so re-running a killed ``crowd poll`` resumes at once instead of waiting the
    lease out (the release is conditional on that owner, so two pollers cannot both win)."""
    if store.acquire_lease(stage_id, owner, seconds):
        return True
    with store.session() as s:
        holder = s.exec(select(PollCursor.lease_owner).where(PollCursor.stage_id == stage_id)).first()
    if not _dead_local_owner(holder):
        return False
    store.release_lease(stage_id, holder)
    return store.acquire_lease(stage_id, owner, seconds)


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
        if not _take_lease(store, stage.id, owner, lease_seconds):
            sp.skipped = "another poller holds this stage"
            continue
        try:
            poll_stage(store, conn, campaign, stage, sp, progress)
        finally:
            store.release_lease(stage.id, owner)
    finish_stages(store, conn, campaign.id)
    with store.session() as s:  # report what finish_stages() made of each stage ("done", not the "open" read before)
        now = dict(s.exec(select(Stage.name, Stage.status).where(Stage.campaign_id == campaign.id)).all())
    for sp in report.stages:
        if sp.campaign == campaign.name:
            sp.status = now[sp.stage]


def poll_stage(store: Store, conn: Connector, campaign: Campaign, stage: Stage, sp: StagePoll,
               progress: Progress | None = None) -> None:
    ref = BatchRef.model_validate(stage.batch_ref)
    with store.session() as s:
        row = s.exec(select(PollCursor).where(PollCursor.stage_id == stage.id)).first()
        cursor = row.cursor if row else None
    result = conn.fetch(ref, cursor, page_refs(store, stage.id, open_only=True))
    checkpoint("poll.fetched")
    sp.fetched = len(result.assignments)
    sp.new = ingest(store, campaign, stage, result)
    checkpoint("poll.ingested")
    if progress:
        progress(f"{stage.name}: ingest", sp.fetched, sp.fetched)
    sp.approved, sp.rejected = review_stage(store, conn, campaign, stage, progress=progress)
    checkpoint("poll.reviewed")
    sp.blocked = apply_quality(store, conn, campaign, stage)
    checkpoint("poll.quality")
    sp.bonuses = pay_bonuses(store, conn, campaign, stage).paid
    reopened = finish_extensions(store, conn, stage)
    sp.extended = len(reopened)
    sp.probes = open_probes(store, conn, campaign, stage)  # before follow-ups: probes claim room first
    sp.follow_ups = ask_again(store, conn, campaign, stage)
    close_probes(store, conn, campaign, stage)
    release_wave(store, conn, campaign, stage)
    finished = [r for r in result.finished_pages if r not in reopened]
    sp.pages_done, sp.pages = refresh_pages(store, stage.id, finished_refs=finished)
    with store.session() as s:
        sp.status = s.get(Stage, stage.id).status
