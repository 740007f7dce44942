"""Adaptive overlap: every page starts at the spec's minimum overlap; a page whose answers are all
in but whose items still disagree gets one more assignment, up to the maximum.

Why per page and one at a time: a page is what the marketplace hands out (a HIT, a task suite),
and one more answer is the cheapest step that can settle a split vote; pages whose answers agree
cost nothing more.

Confidence of an item is its Dawid-Skene posterior (crowd-kit ``DawidSkene.probas_``, the largest
class probability) fitted over every judgement of the stage so far, golden items included, from
workers not blocked: unlike the raw vote share it weighs a worker by how often they agree with the
crowd, so two careful workers outvote a spammer, and a unanimous item answered by spammers is not
"settled". An item with fewer unblocked answers than the minimum overlap counts as undecided. A
page is extended when any real (non-golden) item is below the target: one unsettled item is
enough to get its aggregate wrong. Because that rule alone would extend nearly every page, the
stage's extra assignments are capped (``EXTRA_SHARE`` of the room between minimum and maximum,
summed over pages) and the least confident pages are extended first.

Idempotent extension: the intended new total is written first (``Page.assignments``, status
``extending``); then the marketplace's own count is read (``conn.page_assignments``) and only the
difference is asked for; only then is the page ``published`` again. A crash anywhere in between
leaves an ``extending`` page that the next poll finishes without ever extending twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from sqlmodel import func, select

from campaigns.budget import check_spend
from campaigns.checkpoints import checkpoint
from campaigns.models import Assignment, Campaign, Judgement, Page, PollCursor, Publication, Stage, Task, Worker
from campaigns.quality import _label
from campaigns.specs import campaign_spec
from campaigns.store import Store
from connectors.base import Connector, ConnectorError
from payouts.fees import fee_schedule

MTURK_FEE_STEP = 10  # MTurk cannot extend a HIT created with fewer than 10 assignments to 10 or more
EXTRA_SHARE = 0.5  # of the stage's room between min and max overlap that extensions may use


def max_overlap(campaign: Campaign, stage: Stage) -> int:
    """The stage's maximum, kept under MTurk's 10-assignment step when the pages start below it."""
    top = stage.max_assignments_per_page
    if campaign.provider == "mturk" and stage.assignments_per_page < MTURK_FEE_STEP:
        top = min(top, MTURK_FEE_STEP - 1)
    return top


def _confidence(rows: list[tuple[int, str, str]], minimum: int) -> dict[int, float]:
    """Per task, Dawid-Skene's posterior of its likeliest label, from (task, worker, label) rows;
    the modal vote share where Dawid-Skene cannot be fitted (fewer than three workers or one label)."""
    import warnings

    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    votes: dict[int, Counter] = defaultdict(Counter)
    for task, _, label in rows:
        votes[task][label] += 1
    out = {t: c.most_common(1)[0][1] / sum(c.values()) for t, c in votes.items()}
    df = pd.DataFrame(rows, columns=["task", "worker", "label"]).drop_duplicates(["task", "worker"])
    if df["worker"].nunique() >= 3 and df["label"].nunique() >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probas = DawidSkene(n_iter=100).fit(df).probas_
        out.update({int(t): float(p) for t, p in probas.max(axis=1).items()})
    return {t: (p if sum(votes[t].values()) >= minimum else 0.0) for t, p in out.items()}


def page_agreement(store: Store, campaign: Campaign, stage: Stage, page_ids: list[int]) -> dict[int, float]:
    """Confidence per page: that of its least settled real item (1.0 for a page without real items)."""
    minimum = campaign_spec(campaign).overlap.min
    with store.session() as s:
        blocked = set(s.exec(select(Worker.worker_id).where(Worker.provider == campaign.provider,
                                                            Worker.blocked)).all())
        rows = s.exec(select(Task.id, Judgement.worker_id, Judgement.value)
                      .join(Judgement, Judgement.task_id == Task.id)
                      .where(Task.stage_id == stage.id, Judgement.valid)).all()
        real = s.exec(select(Task.page_id, Task.id).where(Task.page_id.in_(page_ids), Task.golden.is_(False))).all()
    labelled = [(t, w, lab) for t, w, v in rows if w not in blocked and (lab := _label(v)) is not None]
    confidence = _confidence(labelled, minimum) if labelled else {}
    out = {pid: 1.0 for pid in page_ids}
    for page_id, task_id in real:
        out[page_id] = min(out[page_id], round(confidence.get(task_id, 0.0), 9))
    return out


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
    agreement = page_agreement(store, campaign, stage, [p.id for p in full])
    with store.session() as s:
        pages, total = s.exec(select(func.count(), func.sum(Page.assignments)).where(Page.stage_id == stage.id)).one()
    room = int(EXTRA_SHARE * pages * (top - spec.overlap.min)) - (total - pages * spec.overlap.min)
    for page in sorted(full, key=lambda p: (agreement[p.id], p.id)):
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
