"""Approve valid work, reject only under the spec's policy and always with a message, and
book what approval costs (reward + the marketplace's fee) in the ledger.

The decision is written first (``approving`` / ``rejecting``), then the marketplace is called,
then the outcome and its ledger entries are written. A replay after a crash finds the written
decision; if the marketplace refuses the repeat, it asks the marketplace for the assignment's
actual state rather than guessing.

Outcomes are written in batches (``FLUSH_EVERY`` calls or ``FLUSH_AFTER_S``, and at the end, also
when a call raises), one transaction each: a transaction per assignment cost more than the work.
A crash loses at most one batch of outcomes, which the replay settles as above; the ledger's
idempotency keys book each reward and fee once however often a batch is written.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal

from sqlalchemy import update
from sqlmodel import select

from campaigns.spec.stored import campaign_spec
from campaigns.store import keys
from campaigns.store.checkpoints import checkpoint
from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, Judgement, LedgerEntry, Page, Stage, utcnow
from campaigns.store.shard import WHOLE, Shard
from connectors.base import Connector, ConnectorError
from payouts.fees import fee_schedule

INTENT = {"approve": "approving", "reject": "rejecting"}
UNREVIEWED = ("pending", "approving", "rejecting")
FLUSH_EVERY = 100  # marketplace calls whose outcomes are written in one transaction
FLUSH_AFTER_S = 1.0  # ... or fewer, when the marketplace is slow: a crash then loses at most this much


def decide(a: Assignment, judgements: list[Judgement], policy) -> tuple[str, str | None]:
    """('approve' | 'reject', message to the worker). Reads ``a.parse_error`` and each judgement's
    ``valid``, ``error`` and ``golden_correct`` (models, or rows of just those columns)."""
    invalid = [j for j in judgements if not j.valid]
    if policy.reject_invalid and (a.parse_error or (judgements and len(invalid) == len(judgements))):
        why = a.parse_error or invalid[0].error or "the answer could not be read"
        return "reject", f"Your submission could not be used: {why}. Please answer every question on the page."
    golden = [j for j in judgements if j.golden_correct is not None]
    if policy.reject_golden_below is not None and golden:
        accuracy = sum(j.golden_correct for j in golden) / len(golden)
        if accuracy < policy.reject_golden_below:
            return "reject", (f"{len(golden) - sum(j.golden_correct for j in golden)} of {len(golden)} check "
                              "questions with a known answer were answered incorrectly.")
    return "approve", None


def review_stage(store: Store, conn: Connector, campaign: Campaign, stage: Stage,
                 progress: Callable[[str, int, int], None] | None = None, shard: Shard = WHOLE) -> tuple[int, int]:
    """Review the stage's unreviewed assignments on the pages of ``shard`` (``stages.shards``)."""
    policy = campaign_spec(campaign).review
    with store.write() as s:
        unreviewed = (Assignment.stage_id == stage.id, Assignment.review.in_(UNREVIEWED),
                      shard.holds(Assignment.page_id))
        # columns, not models: what decide() and the calls need, without each answer's raw text
        pending = s.exec(select(Assignment.id, Assignment.assignment_id, Assignment.provider_status,
                                Assignment.review, Assignment.review_message, Assignment.worker_id,
                                Assignment.parse_error, Page.assignments)
                         .outerjoin(Page, Page.id == Assignment.page_id)
                         .where(*unreviewed).order_by(Assignment.id)).all()
        if not pending:
            return 0, 0
        judgements: dict[int, list] = defaultdict(list)
        for j in s.exec(select(Judgement.assignment_pk, Judgement.valid, Judgement.error, Judgement.golden_correct)
                        .join(Assignment, Assignment.id == Judgement.assignment_pk)
                        .where(*unreviewed).order_by(Judgement.id)).all():
            judgements[j.assignment_pk].append(j)
        work, intents = [], []
        for a in pending:
            intent, message, page_assignments = a.review, a.review_message, a.assignments
            if intent == "pending":
                action, message = decide(a, judgements[a.id], policy)
                intent = INTENT[action]
                intents.append({"id": a.id, "review": intent, "review_message": message})
            work.append((a.id, a.assignment_id, a.provider_status, intent, message, a.worker_id,
                         1 if page_assignments is None else page_assignments))
        if intents:  # one bulk UPDATE by primary key, not one flush per object
            s.execute(update(Assignment), intents)

    schedule = fee_schedule(campaign.provider)
    in_bulk = _approve_in_bulk(conn, work)
    outcomes: list[tuple[int, str, str, str, Decimal]] = []  # carried out, not yet written
    approved = rejected = 0
    written = time.monotonic()
    try:
        for n, (pk, aid, provider_status, intent, message, worker, page_assignments) in enumerate(work, 1):
            checkpoint("review.before_call")
            outcome = "approved" if aid in in_bulk else _carry_out(conn, aid, provider_status, intent, message)
            checkpoint("review.after_call")
            outcomes.append((pk, aid, worker, outcome, schedule.assignment_fee(stage.reward, page_assignments)))
            if outcome == "approved":
                approved += 1
            else:
                rejected += 1
            if len(outcomes) >= FLUSH_EVERY or time.monotonic() - written >= FLUSH_AFTER_S:
                _record(store, campaign, stage, outcomes)
                outcomes, written = [], time.monotonic()
            if progress:
                progress(f"{stage.name}: review", n, len(work))
    finally:  # what the marketplace did is written even when a later call fails
        _record(store, campaign, stage, outcomes)
    return approved, rejected


def _record(store: Store, campaign: Campaign, stage: Stage, outcomes: list[tuple[int, str, str, str, Decimal]]) -> None:
    """Write carried-out outcomes and book each approval's reward and fee, in one transaction."""
    if not outcomes:
        return
    now = utcnow()
    rows = [dict(idempotency_key=keys.ledger_key(kind, campaign.provider, aid), campaign_id=campaign.id,
                 stage_id=stage.id, provider=campaign.provider, kind=kind, amount=amount, state="confirmed",
                 worker_id=worker, assignment_id=aid, created_at=now, updated_at=now)
            for _, aid, worker, outcome, fee in outcomes if outcome == "approved"
            for kind, amount in (("reward", stage.reward), ("fee", fee))]
    with store.write() as s:
        if rows:
            store.lock_campaign(s, campaign.id)  # see bonuses._settle: budget checks must not see half of a move
        s.execute(update(Assignment), [{"id": pk, "review": outcome} for pk, _, _, outcome, _ in outcomes])
        store.insert_ignore(s, LedgerEntry, rows, ["idempotency_key"])


def _approve_in_bulk(conn: Connector, work: list[tuple]) -> set[str]:
    """Approve every approval at once where the marketplace can (Prolific's bulk-approve); the
    intents are stored first, so a run killed here approves them again (a repeat is ignored).
    A refusal leaves them to one call each, which settles each from its marketplace status."""
    bulk = getattr(conn, "approve_many", None)
    ids = [w[1] for w in work if w[3] == "approving" and w[2] not in ("approved", "rejected")]
    if bulk is None or not ids:
        return set()
    checkpoint("review.before_call")
    try:
        bulk(ids)
    except ConnectorError as exc:
        if exc.retryable:
            raise
        return set()
    checkpoint("review.after_call")
    return set(ids)


def _carry_out(conn: Connector, aid: str, provider_status: str, intent: str, message: str | None) -> str:
    if provider_status in ("approved", "rejected"):
        return provider_status  # decided on the marketplace already (auto-approval, another tool)
    try:
        if intent == "approving":
            conn.approve(aid, message)
            return "approved"
        conn.reject(aid, message or "Rejected.")
        return "rejected"
    except ConnectorError as exc:
        if exc.retryable:
            raise
        actual = conn.assignment_status(aid)
        if actual in ("approved", "rejected"):
            return actual
        raise
