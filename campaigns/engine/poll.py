"""``crowd poll``: every open stage of the campaigns through the pipeline, then finish what is done.

A stage lease (one row per stage) keeps two pollers off the same stage at once; a lease left by a
killed poller on this machine is taken over at once. What happens to a stage inside its lease is
``engine.pipeline``: fetch + ingest (answers and the advanced cursor in one transaction, insert-
ignore keeps one copy of a replay), review (the decision recorded before the marketplace call, the
ledger entries after it, a replay asks the marketplace what happened), and the steps after them.
Then ``engine.finish`` moves items on and closes finished stages.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field

from sqlmodel import select

from campaigns.engine.finish import finish_stages
from campaigns.engine.pipeline import run_stage
from campaigns.engine.stage_run import Progress, StagePoll
from campaigns.errors import CrowdError
from campaigns.money.fees import adopt_fee_rates
from campaigns.store.connect import connector_for
from campaigns.store.database import Store
from campaigns.store.models import Campaign, PollCursor, Stage
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
        adopt_fee_rates(conn)
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
            run_stage(store, conn, campaign, stage, sp, progress)
        finally:
            store.release_lease(stage.id, owner)
    finish_stages(store, conn, campaign.id)
    with store.session() as s:  # report what finish_stages() made of each stage ("done", not the "open" read before)
        now = dict(s.exec(select(Stage.name, Stage.status).where(Stage.campaign_id == campaign.id)).all())
    for sp in report.stages:
        if sp.campaign == campaign.name:
            sp.status = now[sp.stage]
