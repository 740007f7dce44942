"""Adaptive overlap: every item gets the stage's minimum overlap on its planned page; once every
planned page has its answers, an item that is still unsettled is asked again on a *follow-up
page*, one answer at a time, up to the maximum overlap.

Why follow-up pages, not more assignments on the item's own page: a page holds several items,
and when one of them is unsettled the others mostly are not. One more assignment on the page
(MTurk ``CreateAdditionalAssignmentsForHIT``, a Toloka overlap raise) buys an answer to each of
them, most of which nobody needs; a follow-up page holds only unsettled items, so each assignment
buys an answer to every item on it. The price: a marketplace cannot keep a worker who already
answered an item off a new page, so a follow-up answer may come from the same worker twice; it is
kept and paid like any, and the aggregate counts a worker's first answer to a task only
(``campaigns.quality.labels``, ``campaigns.engine.finish``).

Why only after the planned pages: the follow-up answers are the ones that decide the hard items,
and until the planned pages are done, fast spammers not yet blocked take a large share of
whatever is published. By then every worker has been graded on the planned pages' golden tasks
and most spammers are blocked, so follow-up pages carry no golden tasks of their own: a golden
slot there would displace an answer to an item that needs one. Both choices were measured on
the quality benchmark (benchmarks/RESULTS.md, "Worker quality, fourth pass").

Settled means: the item's posterior under Dawid-Skene's worker confusions, smoothed (the largest
class probability of ``campaigns.quality.labels.stage_fit``'s ``posterior``: every judgement of the stage
so far, golden items pinned to their answers, blocked workers left out), reaches the spec's
``overlap.target_agreement``. Smoothed because crowd-kit's own ``probas_`` is overconfident: on a
benchmark run, items it put above 0.99 were 96% right, those the smoothed posterior put there
100%. Unlike a raw vote share it weighs a worker by how often they agree with the crowd, so two
careful workers outvote a spammer. An item with fewer unblocked answers than the minimum is
unsettled whatever its votes say (its answers came from workers blocked since).

Who answers them: the trusted pool (``overlap.follow_up_workers: trusted``, the default). The
stage's batch has a lane for them (another HIT type or pool, ``connectors.base``)
open only to the spec's ``pools.trusted``, used once that pool has at least the maximum overlap's
number of members. Without it, follow-up answers come from whoever takes the page: on Toloka 7% of
them came from spammers not yet blocked, and a spammer's answer on an unsettled item does the most
harm. With it, they come from the workers the trust policy is most sure of: on the quality
benchmark adaptive overlap went from 1.3 points below fixed maximum overlap on Toloka (and level
on MTurk) to 0.8 points above on both, at 75% of its assignments (benchmarks/RESULTS.md, fifth
pass). The cost: a spammer not blocked by the end of the planned pages gets no more work, so no
more evidence, and may end the campaign unblocked, unless probe pages give it some
(``campaigns.adaptive.probation``). The lane's decision is kept on the page (``Page.lane``), so a
re-publish after a crash goes where the first attempt went.

How much extra work: capped at ``overlap.extra_share`` of the room between minimum and maximum,
summed over the planned pages that got their minimum answers, least settled items first.
Follow-up pages are filled to the stage's page size; a partly filled one goes out only once no
other follow-up page waits for its answer, so that the stage can finish.

Idempotent: follow-up pages are written first, with page keys numbered from the follow-up pages
already written, then published with their idempotency keys like any page. A crash in between
leaves written pages without a publication, which the next poll publishes; an item on a page
still waiting for answers is never asked for again, so no item is asked for twice at once.

Whole-page extension (``extend`` to a page's recorded ``assignments``) remains for Find-Fix-Verify,
whose items are one per page (``campaigns.engine.advance`` writes the intent as an ``extending`` page): the
intended total is written first, then the marketplace's own count is read and only the difference
asked for, so a crash in between never extends twice.
"""

from __future__ import annotations

import math
from collections import Counter

import pandas as pd
from sqlmodel import func, select

from campaigns.money.budget import pages_affordable, pages_cost
from campaigns.quality.labels import stage_fit
from campaigns.quality.pools import PROBATION_LANE, TRUSTED_LANE, blocked_workers, follow_up_pool, members
from campaigns.spec.model import CampaignSpec
from campaigns.spec.stored import campaign_spec
from campaigns.stages.plan import follow_up_room, stage_shape
from campaigns.stages.publish import follow_pages, publish_stage
from campaigns.store import keys
from campaigns.store.checkpoints import checkpoint
from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, Page, PollCursor, Publication, Stage, Task
from connectors.base import BatchRef, Connector, ConnectorError
from decomposition.aggregate import LabelFit


def item_confidence(fit: LabelFit | None, rows: pd.DataFrame, blocked: set[str], minimum: int) -> dict[int, float]:
    """Per task, the posterior of its likeliest label (the modal vote share where there is no
    fit), and 0.0 for a task with fewer than ``minimum`` answers from unblocked workers."""
    rows = rows[~rows["worker"].isin(list(blocked))]
    counts = rows.groupby("task")["label"].agg(["size", lambda x: x.value_counts().iloc[0]])
    counts.columns = ["n", "top"]
    out = {int(t): r["top"] / r["n"] for t, r in counts.iterrows()}
    if fit is not None:
        out.update({int(t): float(p) for t, p in fit.posterior.max(axis=1).items() if int(t) in out})
    return {t: (p if counts.at[t, "n"] >= minimum else 0.0) for t, p in out.items()}


def _push(store: Store, conn: Connector, stage: Stage, page_id: int, ref: str) -> bool:
    """Bring the marketplace up to the page's recorded total; True once it is there."""
    with store.session() as s:
        want = s.get(Page, page_id).assignments
    checkpoint("overlap.before_extend")
    try:
        have = conn.page_assignments(ref)
        if have < want:
            conn.extend(ref, want - have)
    except ConnectorError as exc:
        if exc.retryable or exc.code != "TenAssignmentLimit":
            return False  # stays `extending`; the next poll tries again
        want = have  # the marketplace can never take more: settle for what it has
    checkpoint("overlap.extended")
    with store.write() as s:
        page = s.get(Page, page_id)
        page.assignments, page.status = want, "published"
        s.add(page)
        row = s.exec(select(PollCursor).where(PollCursor.stage_id == stage.id)).first()
        if row is not None:
            row.cursor = conn.watch(row.cursor, [ref])
            s.add(row)
    return True


def finish_extensions(store: Store, conn: Connector, stage: Stage) -> list[str]:
    """Carry out the stage's ``extending`` pages; returns the provider refs of those extended now
    (their earlier "finished" report from the marketplace no longer holds)."""
    with store.session() as s:
        pending = s.exec(select(Page.id, Publication.provider_ref).join(Publication)
                         .where(Page.stage_id == stage.id, Page.status == "extending")).all()
    return [ref for page_id, ref in pending if _push(store, conn, stage, page_id, ref)]


def publish_pages(store: Store, conn: Connector, campaign: Campaign, stage: Stage, page_ids: list[int]) -> int:
    if not page_ids:
        return 0
    report = publish_stage(store, conn, campaign.id, stage_name=stage.name, page_ids=page_ids)
    follow_pages(store, conn, stage)
    return report.published


def write_follow_ups(store: Store, campaign: Campaign, stage: Stage, label: str, start: int,
                     task_keys: list[list[str]], assignments: int, lane: str | None) -> list[int]:
    """Write pages of ``task_keys`` to publish after the planned ones, keyed ``label/n`` from
    ``start`` (so a re-run after a crash writes the same keys); returns their ids."""
    with store.write() as s:
        new = [Page(stage_id=stage.id, page_key=keys.short_id(campaign.name, stage.name, f"{label}/{start + i}",
                                                              prefix="pg"),
                    task_keys=k, assignments=assignments, follow_up=True, lane=lane)
               for i, k in enumerate(task_keys)]
        s.add_all(new)
        s.flush()
        return [p.id for p in new]


def stage_has_lane(stage: Stage, name: str) -> bool:
    """Was the stage's batch created with this lane?"""
    return bool(stage.batch_ref) and BatchRef.model_validate(stage.batch_ref).has_lane(name)


def trusted_lane(store: Store, campaign: Campaign, stage: Stage, top: int) -> bool:
    """Do the next follow-up pages go to the trusted pool's lane? Only when the stage's batch has
    that lane and the pool has at least ``top`` members: fewer could not give an item the answers
    it may still need from different people."""
    pool = follow_up_pool(campaign)
    if pool is None or not stage_has_lane(stage, TRUSTED_LANE):
        return False
    return len(members(store, campaign.provider, pool)) >= top


def stage_pages(store: Store, stage: Stage) -> tuple[list[Page], dict[int, int]]:
    """The stage's pages in order, and the answers received per page id."""
    with store.session() as s:
        pages = s.exec(select(Page).where(Page.stage_id == stage.id).order_by(Page.id)).all()
        received = dict(s.exec(select(Assignment.page_id, func.count()).where(Assignment.stage_id == stage.id)
                               .group_by(Assignment.page_id)).all())
    return pages, received


def room_left(spec: CampaignSpec, pages: list[Page], received: dict[int, int], minimum: int, top: int) -> int:
    """Follow-up assignments (follow-up and probe pages alike) the stage may still add: the room
    its planned pages with their minimum answers give, less what follow-up pages already hold."""
    ready = sum(received.get(p.id, 0) >= minimum for p in pages if not p.follow_up)
    return follow_up_room(spec, ready, minimum, top) - sum(p.assignments for p in pages if p.follow_up)


def waiting(page: Page, received: dict[int, int]) -> bool:
    """Is the page still waiting for answers (or not yet published)?"""
    return page.status != "done" and received.get(page.id, 0) < page.assignments


def ask_again(store: Store, conn: Connector, campaign: Campaign, stage: Stage) -> int:
    """One adaptive-overlap step for a stage: once every planned page has its answers, publish
    follow-up pages for the unsettled items; returns how many follow-up pages were published."""
    minimum, top = stage.assignments_per_page, stage.max_assignments_per_page
    if top <= minimum:
        return 0
    spec = campaign_spec(campaign)
    pages, received = stage_pages(store, stage)
    with store.session() as s:
        on_market = set(s.exec(select(Publication.page_id).join(Page).where(Page.stage_id == stage.id)).all())
        real = dict(s.exec(select(Task.key, Task.id).where(Task.stage_id == stage.id, Task.golden.is_(False))).all())
    unpublished = [p.id for p in pages if p.follow_up and p.id not in on_market]  # probe pages too
    published = publish_pages(store, conn, campaign, stage, unpublished)
    planned = [p for p in pages if not p.follow_up]
    if any(waiting(p, received) for p in planned):
        return published

    asked: Counter[str] = Counter()
    open_keys: set[str] = set()  # keys on a follow-up page still waiting for its answer
    for p in pages:
        asked.update({k: p.assignments for k in p.task_keys})
        if waiting(p, received) and p.lane != PROBATION_LANE:  # a probe page holds golden tasks only
            open_keys.update(p.task_keys)
    with store.session() as s:
        blocked = blocked_workers(s, campaign.provider)
    fit, rows, _ = stage_fit(store, stage, blocked)
    confidence = item_confidence(fit, rows, blocked, minimum) if len(rows) else {}
    unsettled = sorted((confidence.get(t, 0.0), t, k) for k, t in real.items()
                       if k not in open_keys and asked[k] < top
                       and confidence.get(t, 0.0) < spec.overlap.target_agreement)
    room = room_left(spec, pages, received, minimum, top)
    size = stage_shape(spec, stage.name)[0]
    # full pages while others still wait for answers; the rest once none does, so the stage can end
    count = len(unsettled) // size if open_keys else math.ceil(len(unsettled) / size)
    affordable = pages_affordable(store, campaign.id, pages_cost(campaign.provider, stage.reward, [1]))
    count = min(count, room, count if affordable is None else affordable)
    if count <= 0:
        return published

    start = sum(p.follow_up and p.lane != PROBATION_LANE for p in pages)
    lane = TRUSTED_LANE if trusted_lane(store, campaign, stage, top) else None
    ids = write_follow_ups(store, campaign, stage, "follow-up", start,
                           [[k for _, _, k in unsettled[i * size:(i + 1) * size]] for i in range(count)], 1, lane)
    checkpoint("overlap.follow_ups_written")
    return published + publish_pages(store, conn, campaign, stage, ids)
