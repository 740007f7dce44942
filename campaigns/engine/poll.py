"""``crowd poll``: every open stage of the campaigns through the pipeline, then finish what is done.

A lease keeps two pollers off the same work: one per shard of a stage's pages (``stages.shards``;
a stage of up to ``poll_shard_pages`` pages is one shard), shard 0's being the stage's own. A
poller walks a stage's shards and polls each whose lease it can take, skipping those another poller
holds or polled since this poll began (never waiting), so N pollers share a big stage; a lease left
by a killed poller on this machine is taken over at once. What happens to a shard inside its lease
is ``engine.pipeline``: fetch + ingest (answers and the advanced cursor in one transaction,
insert-ignore keeps one copy of a replay), review (the decision recorded before the marketplace
call, the ledger entries after it, a replay asks the marketplace what happened), and, with shard 0,
the stage-wide steps after them. Then ``engine.finish`` moves items on and closes finished stages.
"""

from __future__ import annotations

import os
import socket
import uuid
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import select

from campaigns.engine.cursor import open_pages
from campaigns.engine.finish import finish_stages
from campaigns.engine.pipeline import run_stage
from campaigns.engine.stage_run import Progress, StagePoll
from campaigns.errors import CrowdError
from campaigns.money.fees import adopt_fee_rates
from campaigns.stages.shards import stage_shards
from campaigns.store.connect import connector_for
from campaigns.store.database import Store
from campaigns.store.models import Campaign, PollCursor, Stage, utcnow
from connectors.base import Connector


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


def _take_lease(store: Store, stage_id: int, owner: str, seconds: float, shard: int = 0) -> bool:
    """Take a shard's lease. A lease left by a poller on this machine that was killed is
    released first, so re-running a killed ``crowd poll`` resumes at once instead of waiting the
    lease out (the release is conditional on that owner, so two pollers cannot both win)."""
    if store.acquire_lease(stage_id, owner, seconds, shard=shard):
        return True
    with store.session() as s:
        holder = s.exec(select(PollCursor.lease_owner).where(PollCursor.stage_id == stage_id,
                                                             PollCursor.shard == shard)).first()
    if not _dead_local_owner(holder):
        return False
    store.release_lease(stage_id, holder, shard=shard)
    return store.acquire_lease(stage_id, owner, seconds, shard=shard)


def _fetch_round(conn: Connector) -> AbstractContextManager:
    """The connector's round of fetches sharing one account-wide listing (MTurk's ListHITs, read
    once for all of a stage's shards), where it has one."""
    return getattr(conn, "fetch_round", nullcontext)()


def _polled_since(store: Store, stage_id: int, shard: int, since: datetime) -> bool:
    """Did another poller take or give back this shard's lease, or move its cursor, after ``since``
    (in this round: polling it again would list its pages for nothing)?"""
    with store.session() as s:
        return s.exec(select(PollCursor.id).where(PollCursor.stage_id == stage_id, PollCursor.shard == shard,
                                                  PollCursor.updated_at > since)).first() is not None


def poll(store: Store, campaign: str | None = None, *, endpoint: str | None = None,
         connector: Connector | None = None, progress: Progress | None = None, owner: str | None = None,
         lease_seconds: int = 600) -> PollReport:
    owner = owner or default_owner()
    started = utcnow()
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
        adopt_fee_rates(conn)
        before = dict(conn.calls)
        _poll_campaign(store, conn, c, report, owner, lease_seconds, progress, started)
        for op, n in conn.calls.items():
            calls[op] = calls.get(op, 0) + n - before.get(op, 0)
    report.api_calls = calls
    with store.session() as s:
        names = [c.name for c in campaigns]
        report.all_done = all(s.exec(select(Campaign.status).where(Campaign.name == n)).one() == "done"
                              for n in names)
    return report


def _poll_campaign(store: Store, conn: Connector, campaign: Campaign, report: PollReport, owner: str,
                   lease_seconds: int, progress: Progress | None, started: datetime) -> None:
    with store.session() as s:
        stages = s.exec(select(Stage).where(Stage.campaign_id == campaign.id, Stage.status == "open")
                        .order_by(Stage.id)).all()
    for stage in stages:
        sp = StagePoll(campaign=campaign.name, stage=stage.name)
        report.stages.append(sp)
        opened = open_pages(store, stage)  # every shard's, read before the round's first listing
        with _fetch_round(conn):
            for shard in stage_shards(store, stage.id):
                if _polled_since(store, stage.id, shard.index, started):
                    continue
                if not _take_lease(store, stage.id, owner, lease_seconds, shard.index):
                    continue
                run = StagePoll(campaign=campaign.name, stage=stage.name)
                try:
                    run_stage(store, conn, campaign, stage, run, progress, shard,
                              {ref: p for ref, p in opened.items() if shard.has(p.page_id)})
                finally:
                    store.release_lease(stage.id, owner, shard=shard.index)
                    sp.add(run)
        if not sp.shards:
            sp.skipped = "another poller holds this stage"
    finish_stages(store, conn, campaign.id)
    with store.session() as s:  # report what finish_stages() made of each stage ("done", not the "open" read before)
        now = dict(s.exec(select(Stage.name, Stage.status).where(Stage.campaign_id == campaign.id)).all())
    for sp in report.stages:
        if sp.campaign == campaign.name:
            sp.status = now[sp.stage]
