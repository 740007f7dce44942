"""Approve valid work, reject only under the spec's policy and always with a message, and
book what approval costs (reward + the marketplace's fee) in the ledger.

The decision is written first (``approving`` / ``rejecting``), then the marketplace is called,
then the outcome and its ledger entries are written. A replay after a crash finds the written
decision; if the marketplace refuses the repeat, it asks the marketplace for the assignment's
actual state rather than guessing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal

from sqlmodel import select

from campaigns.spec.stored import campaign_spec
from campaigns.store import keys
from campaigns.store.checkpoints import checkpoint
from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, Judgement, LedgerEntry, Page, Stage, utcnow
from connectors.base import Connector, ConnectorError
from payouts.fees import fee_schedule

INTENT = {"approve": "approving", "reject": "rejecting"}


def decide(a: Assignment, judgements: list[Judgement], policy) -> tuple[str, str | None]:
    """('approve' | 'reject', message to the worker)."""
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
                 progress: Callable[[str, int, int], None] | None = None) -> tuple[int, int]:
    policy = campaign_spec(campaign).review
    with store.write() as s:
        pending = s.exec(select(Assignment).where(Assignment.stage_id == stage.id,
                                                  Assignment.review.in_(["pending", "approving", "rejecting"]))
                         .order_by(Assignment.id)).all()
        if not pending:
            return 0, 0
        judgements: dict[int, list[Judgement]] = defaultdict(list)
        for j in s.exec(select(Judgement).where(Judgement.assignment_pk.in_([a.id for a in pending]))).all():
            judgements[j.assignment_pk].append(j)
        work = []
        for a in pending:
            if a.review == "pending":
                action, message = decide(a, judgements[a.id], policy)
                a.review, a.review_message = INTENT[action], message
                s.add(a)
            work.append((a.id, a.assignment_id, a.provider_status, a.review, a.review_message, a.page_id,
                         a.worker_id))
        page_assignments = {p.id: p.assignments for p in s.exec(
            select(Page).where(Page.id.in_({w[5] for w in work if w[5] is not None}))).all()}

    schedule = fee_schedule(campaign.provider)
    in_bulk = _approve_in_bulk(conn, work)
    approved = rejected = 0
    for n, (pk, aid, provider_status, intent, message, page_id, worker) in enumerate(work, 1):
        checkpoint("review.before_call")
        outcome = "approved" if aid in in_bulk else _carry_out(conn, aid, provider_status, intent, message)
        checkpoint("review.after_call")
        with store.write() as s:
            row = s.get(Assignment, pk)
            row.review = outcome
            s.add(row)
            if outcome == "approved":
                approved += 1
                fee = schedule.assignment_fee(stage.reward, page_assignments.get(page_id, 1))
                _book(store, s, campaign, stage, aid, worker, stage.reward, fee)
            else:
                rejected += 1
        if progress:
            progress(f"{stage.name}: review", n, len(work))
    return approved, rejected


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


def _book(store: Store, s, campaign: Campaign, stage: Stage, aid: str, worker: str, reward: Decimal,
          fee: Decimal) -> None:
    store.lock_campaign(s, campaign.id)  # see bonuses._settle: budget checks must not see half of a move
    now = utcnow()
    rows = [dict(idempotency_key=keys.ledger_key(kind, campaign.provider, aid), campaign_id=campaign.id,
                 stage_id=stage.id, provider=campaign.provider, kind=kind, amount=amount, state="confirmed",
                 worker_id=worker, assignment_id=aid, created_at=now, updated_at=now)
            for kind, amount in (("reward", reward), ("fee", fee))]
    store.insert_ignore(s, LedgerEntry, rows, ["idempotency_key"])
