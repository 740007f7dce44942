"""Probation: golden-only *probe pages* for suspects, once follow-up pages are for the trusted
pool only.

Why: with adaptive overlap's follow-up pages in the trusted lane (``campaigns.adaptive.overlap``), a worker
who is neither blocked nor trusted gets no more work after the planned pages, so no more evidence.
A spammer the policy could not yet block (its optimistic bound still above the line after 4-6
pages) then ends the campaign unblocked: in 2 of 40 benchmark runs only 7 of 10 spammers ended
blocked (benchmarks/RESULTS.md, fifth pass). Probe pages in the stage's open lane did not close
that gap, because anyone not blocked may take them and suspects had to compete for them.

So suspects get a lane of their own: the batch's ``probation`` lane, open only to the spec's
``pools.probation`` pool (``campaigns.quality.pools.lane_pools``). A *suspect* is a worker of the campaign
who is not blocked, not trusted, and whose trust mean (``WorkerScore.trust``, written by
``campaigns.quality.trust`` this poll) is below ``review.block_below_trust``: the best estimate says
"block", the evidence is not yet enough. Each probe answer is graded against a known answer, the
strongest evidence the trust policy has, so a clicker is blocked after a page or two, and an
honest worker who was unlucky early climbs out of suspicion.

The steps, each poll (``open_probes`` before adaptive overlap's step, ``close_probes`` after):
- while follow-up pages go to the trusted lane, suspects join the probation pool (once per worker
  and campaign), and a worker who stops being a suspect, or has answered ``review.probe_pages``
  probe pages, leaves it;
- once every suspect in the pool has answered every probe page still open (a page may still wait
  on a suspect blocked since, or a later suspect may take that slot), a round goes out: pages of
  the stage's golden tasks (those the suspects answered least), as many as the suspect nearest
  the limit may still take, each open to as many assignments as there are suspects in the pool.
  A worker takes a page at most once, so nobody answers more than ``probe_pages`` in all;
- probe pages are follow-up pages for the stage's cost cap: their assignments come out of the
  follow-up room (``overlap.extra_share``) and the budget, and they claim it before follow-up
  pages do, since there are few of them and each blocks a spammer who would cost more;
- once no other page of the stage is waiting for answers, probe pages must not hold the stage
  open: each is stopped (``Connector.stop``; the page then waits only for work already taken)
  and every member this campaign put in the probation pool leaves it.

Membership goes through ``WorkerAction`` rows like every other pool change (planned with an
idempotency key, carried out, retried if refused).
"""

from __future__ import annotations

from collections import Counter

from sqlmodel import select

from campaigns.adaptive.overlap import (
    publish_pages,
    room_left,
    stage_has_lane,
    stage_pages,
    trusted_lane,
    waiting,
    write_follow_ups,
)
from campaigns.money.budget import pages_affordable, pages_cost
from campaigns.quality.actions import carry_out_actions, plan_action
from campaigns.quality.pools import PROBATION_LANE, blocked_workers, members, probation_pool
from campaigns.spec.stored import campaign_spec
from campaigns.stages.plan import stage_shape
from campaigns.store.checkpoints import checkpoint
from campaigns.store.database import Store
from campaigns.store.models import (
    Assignment,
    Campaign,
    Judgement,
    Page,
    Publication,
    Stage,
    Task,
    WorkerAction,
    WorkerScore,
)
from connectors.base import Connector, ConnectorError


def suspects(store: Store, campaign: Campaign) -> set[str]:
    """Workers of the campaign the policy leans to block but cannot yet: not blocked, not trusted,
    trust mean below ``review.block_below_trust``."""
    spec = campaign_spec(campaign)
    line = spec.review.block_below_trust
    if line is None:
        return set()
    trusted = members(store, campaign.provider, spec.pools.trusted) if spec.pools.trusted else set()
    with store.session() as s:
        low = set(s.exec(select(WorkerScore.worker_id).where(WorkerScore.campaign_id == campaign.id,
                                                             WorkerScore.trust < line)).all())
        blocked = blocked_workers(s, campaign.provider)
    return low - blocked - trusted


def _probe_answers(store: Store, stage: Stage) -> set[tuple[str, int]]:
    """(worker, probe page id) for every probe answer of the stage."""
    with store.session() as s:
        return set(s.exec(select(Assignment.worker_id, Assignment.page_id).join(Page, Page.id == Assignment.page_id)
                          .where(Assignment.stage_id == stage.id, Page.lane == PROBATION_LANE)).all())


def _set_membership(store: Store, conn: Connector, campaign: Campaign, pool: str, want: set[str]) -> None:
    """Bring this campaign's part of the probation pool to ``want``: join once and leave once per
    worker and campaign. Members another campaign put there are left to it."""
    provider = campaign.provider
    with store.session() as s:
        mine = set(s.exec(select(WorkerAction.worker_id).where(
            WorkerAction.campaign_id == campaign.id, WorkerAction.pool == pool, WorkerAction.action == "grant")).all())
    everyone = members(store, provider, pool)
    have = everyone & mine
    with store.write() as s:
        for w in sorted(want - everyone):
            plan_action(s, store, key=f"probation:{provider}:{w}:{campaign.id}", provider=provider, worker_id=w,
                        action="grant", pool=pool, campaign_id=campaign.id, evidence={"by": "probation"},
                        reason=f"{w}: suspect, probe pages in campaign {campaign.name}")
        for w in sorted(have - want):
            plan_action(s, store, key=f"probation-end:{provider}:{w}:{campaign.id}", provider=provider,
                        worker_id=w, action="revoke", pool=pool, campaign_id=campaign.id,
                        evidence={"by": "probation"}, reason=f"{w}: probation over in campaign {campaign.name}")
    carry_out_actions(store, conn, provider)


def _probe_keys(store: Store, stage: Stage, workers: set[str], count: int) -> list[str]:
    """``count`` golden task keys of the stage, those these workers answered least first."""
    with store.session() as s:
        golden = s.exec(select(Task.id, Task.key).where(Task.stage_id == stage.id, Task.golden)
                        .order_by(Task.id)).all()
        seen = Counter(s.exec(select(Judgement.task_id).where(Judgement.stage_id == stage.id,
                                                              Judgement.worker_id.in_(sorted(workers)))).all())
    ranked = [k for _, _, k in sorted((seen[t], t, k) for t, k in golden)]
    return (ranked * (count // max(1, len(ranked)) + 1))[:count] if ranked else []


def open_probes(store: Store, conn: Connector, campaign: Campaign, stage: Stage) -> int:
    """Keep the probation pool to the suspects and send out a round of probe pages when none is
    waiting; returns how many probe pages were published."""
    pool = probation_pool(campaign)
    minimum, top = stage.assignments_per_page, stage.max_assignments_per_page
    if pool is None or not stage_has_lane(stage, PROBATION_LANE):
        return 0
    pages, received = stage_pages(store, stage)
    if any(waiting(p, received) for p in pages if not p.follow_up):
        return 0  # the planned pages are still open to everyone
    if not trusted_lane(store, campaign, stage, top):
        return 0  # follow-up pages are open to suspects too: they give evidence
    spec = campaign_spec(campaign)
    answers = _probe_answers(store, stage)
    answered = Counter(w for w, _ in answers)
    candidates = {w for w in suspects(store, campaign) if answered[w] < spec.review.probe_pages}
    _set_membership(store, conn, campaign, pool, candidates)
    eligible = candidates & members(store, campaign.provider, pool)
    still_open = [p.id for p in pages if p.lane == PROBATION_LANE and waiting(p, received)]
    if not eligible or any((w, p) not in answers for w in eligible for p in still_open):
        return 0  # a suspect still has a probe page to take (a page may wait on one blocked since)
    room = room_left(spec, pages, received, minimum, top)
    n_pages = min(spec.review.probe_pages - answered[w] for w in eligible)  # nobody past probe_pages
    per_page = min(len(eligible), room // n_pages)
    if per_page <= 0:
        return 0
    affordable = pages_affordable(store, campaign.id, pages_cost(campaign.provider, stage.reward, [per_page]))
    n_pages = n_pages if affordable is None else min(n_pages, affordable)
    size = stage_shape(spec, stage.name)[0]
    task_keys = _probe_keys(store, stage, eligible, n_pages * size)
    if n_pages <= 0 or not task_keys:
        return 0
    start = sum(p.lane == PROBATION_LANE for p in pages)
    ids = write_follow_ups(store, campaign, stage, "probe", start,
                           [task_keys[i * size:(i + 1) * size] for i in range(n_pages)], per_page, PROBATION_LANE)
    checkpoint("probation.probes_written")
    return publish_pages(store, conn, campaign, stage, ids)


def close_probes(store: Store, conn: Connector, campaign: Campaign, stage: Stage) -> int:
    """Once no other page of the stage waits for answers: stop the probe pages still open and end
    every probation membership; returns how many probe pages were stopped."""
    pool = probation_pool(campaign)
    if pool is None or not stage_has_lane(stage, PROBATION_LANE):
        return 0
    pages, received = stage_pages(store, stage)
    if any(waiting(p, received) for p in pages if p.lane != PROBATION_LANE):
        return 0
    _set_membership(store, conn, campaign, pool, set())
    open_ids = [p.id for p in pages if p.lane == PROBATION_LANE and waiting(p, received)]
    with store.session() as s:
        refs = dict(s.exec(select(Publication.page_id, Publication.provider_ref)
                           .where(Publication.page_id.in_(open_ids))).all())
    stopped = 0
    for page_id in open_ids:
        ref = refs.get(page_id)
        try:
            if ref is not None:
                conn.stop(ref)
                left = conn.page_assignments(ref)
        except ConnectorError:
            continue  # still open; the next poll tries again
        with store.write() as s:
            page = s.get(Page, page_id)
            if ref is None:  # written, never published: nothing can come
                page.status = "done"
            else:
                page.assignments = min(page.assignments, left)
            s.add(page)
        stopped += 1
    return stopped
