"""Adaptive overlap: every page starts at the spec's minimum overlap; a page whose answers are all
in but whose items still disagree gets one more assignment, up to the maximum.

Why per page and one at a time: a page is what the marketplace hands out (a HIT, a task suite),
and one more answer is the cheapest step that can settle a split vote; pages whose answers agree
cost nothing more.

Confidence of an item is its posterior under Dawid-Skene's worker confusions, smoothed (the
largest class probability of ``campaigns.labels.stage_fit``'s ``posterior``: every judgement of
the stage so far, golden items pinned to their answers, workers not blocked). Smoothed because
crowd-kit's own ``probas_`` is overconfident: on a benchmark run, items it put above 0.99 were 96%
right, those the smoothed posterior put there 100% (benchmarks/RESULTS.md). Unlike the raw vote
share it weighs a worker by how often they agree with the crowd, so two careful workers outvote a
spammer, and a unanimous item answered by spammers is not "settled". An item with fewer unblocked
answers than the minimum overlap counts as undecided. A page is extended when any real
(non-golden) item is below the target: one unsettled item is enough to get its aggregate wrong.
Because that rule alone would extend nearly every page, the stage's extra assignments are capped
(``EXTRA_SHARE`` of the room between minimum and maximum, summed over the pages that have their
minimum answers, so the room is paced with the work) and the pages with the most doubt go first:
the sum of ``1 - confidence`` over their unsettled items, since one more answer on a page is an
answer to each of its items.

Idempotent extension: the intended new total is written first (``Page.assignments``, status
``extending``); then the marketplace's own count is read (``conn.page_assignments``) and only the
difference is asked for; only then is the page ``published`` again. A crash anywhere in between
leaves an ``extending`` page that the next poll finishes without ever extending twice.
"""

from __future__ import annotations

import pandas as pd
from sqlmodel import func, select

from campaigns.budget import check_spend
from campaigns.checkpoints import checkpoint
from campaigns.labels import stage_fit
from campaigns.models import Assignment, Campaign, Page, PollCursor, Publication, Stage, Task
from campaigns.pools import blocked_workers
from campaigns.specs import campaign_spec
from campaigns.store import Store
from connectors.base import Connector, ConnectorError
from decomposition.aggregate import LabelFit
from payouts.fees import fee_schedule

MTURK_FEE_STEP = 10  # MTurk cannot extend a HIT created with fewer than 10 assignments to 10 or more
EXTRA_SHARE = 0.5  # of the stage's room between min and max overlap that extensions may use


def max_overlap(campaign: Campaign, stage: Stage) -> int:
    """The stage's maximum, kept under MTurk's 10-assignment step when the pages start below it."""
    top = stage.max_assignments_per_page
    if campaign.provider == "mturk" and stage.assignments_per_page < MTURK_FEE_STEP:
        top = min(top, MTURK_FEE_STEP - 1)
    return top


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


def item_confidences(store: Store, campaign: Campaign, stage: Stage, page_ids: list[int]) -> dict[int, list[float]]:
    """Per page, the confidence of each of its real (non-golden) items."""
    minimum = campaign_spec(campaign).overlap.min
    with store.session() as s:
        blocked = blocked_workers(s, campaign.provider)
    fit, rows, _ = stage_fit(store, stage, blocked)
    with store.session() as s:
        real = s.exec(select(Task.page_id, Task.id).where(Task.page_id.in_(page_ids), Task.golden.is_(False))).all()
    confidence = item_confidence(fit, rows, blocked, minimum) if len(rows) else {}
    out: dict[int, list[float]] = {pid: [] for pid in page_ids}
    for page_id, task_id in real:
        out[page_id].append(round(confidence.get(task_id, 0.0), 9))
    return out


def page_agreement(store: Store, campaign: Campaign, stage: Stage, page_ids: list[int]) -> dict[int, float]:
    """Confidence per page: that of its least settled real item (1.0 for a page without real items)."""
    return {pid: min(c, default=1.0) for pid, c in item_confidences(store, campaign, stage, page_ids).items()}


def _budget_allows(store: Store, campaign: Campaign, stage: Stage, new_total: int) -> bool:
    """May the campaign pay one more assignment (reward + fee at the page's new size)?"""
    if campaign.budget_cap is None:
        return True
    cost = stage.reward + fee_schedule(campaign.provider).assignment_fee(stage.reward, new_total)
    return check_spend(store, campaign.id, cost, scope="adaptive overlap").allowed


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


def extend_pages(store: Store, conn: Connector, campaign: Campaign, stage: Stage) -> list[str]:
    """One adaptive-overlap step for a stage; returns the provider refs of pages extended now
    (their earlier "finished" report from the marketplace no longer holds)."""
    spec = campaign_spec(campaign)
    top = max_overlap(campaign, stage)
    with store.session() as s:
        refs = dict(s.exec(select(Publication.page_id, Publication.provider_ref).join(Page)
                           .where(Page.stage_id == stage.id)).all())
        pending = s.exec(select(Page.id).where(Page.stage_id == stage.id, Page.status == "extending")).all()
        received = dict(s.exec(select(Assignment.page_id, func.count()).where(Assignment.stage_id == stage.id)
                               .group_by(Assignment.page_id)).all())
        full = [p for p in s.exec(select(Page).where(Page.stage_id == stage.id, Page.status == "published",
                                                     Page.assignments < top)).all()
                if received.get(p.id, 0) >= p.assignments and p.id in refs]
    extended = [refs[pid] for pid in pending if _push(store, conn, stage, pid, refs[pid])]
    if not full:
        return extended
    conf = item_confidences(store, campaign, stage, [p.id for p in full])
    agreement = {pid: min(c, default=1.0) for pid, c in conf.items()}
    # what one more answer on the page can settle: the doubt summed over its unsettled items
    doubt = {pid: sum(1 - x for x in c if x < spec.overlap.target_agreement) for pid, c in conf.items()}
    with store.session() as s:
        pages, total = s.exec(select(func.count(), func.sum(Page.assignments)).where(Page.stage_id == stage.id)).one()
    # paced: each page that has its minimum answers adds its share, so early pages cannot use up
    # the room that pages finishing later may need more
    ready = sum(1 for n in received.values() if n >= spec.overlap.min)
    room = int(EXTRA_SHARE * ready * (top - spec.overlap.min)) - (total - pages * spec.overlap.min)
    for page in sorted(full, key=lambda p: (-doubt[p.id], p.id)):
        if room <= 0 or agreement[page.id] >= spec.overlap.target_agreement:
            break
        if not _budget_allows(store, campaign, stage, page.assignments + 1):
            break
        with store.write() as s:
            row = s.get(Page, page.id)
            row.assignments, row.status = page.assignments + 1, "extending"
            s.add(row)
        room -= 1
        if _push(store, conn, stage, page.id, refs[page.id]):
            extended.append(refs[page.id])
    return extended
