"""Bonuses paid during a poll, after review and quality: the spec's bonus policies, under the
budget cap, each paid exactly once even when the process is killed mid-payment.

Policies (spec): ``review.quality_bonus`` pays that amount per approved assignment of a worker
the trust policy trusts; ``pricing.wage_topup`` pays, per approved assignment, what lifts the
page reward to ``pricing.hourly_wage`` at the *median* measured time per page, once at least
``pricing.topup_after`` assignments are timed (the median, not each worker's own time, so idle
time in an open tab is not paid and a fast careful worker is not paid less).

Kill safety: a bonus and its fee are first booked ``planned`` with an idempotency key derived
from the policy and the assignment (``campaigns.money.budget.reserve``: cap check and insert in one
locked transaction). They turn ``sent`` just before the marketplace is called with that key
(MTurk UniqueRequestToken, Toloka operation id) and ``confirmed`` after. A repeat within the
token's lifetime is recognised by the marketplace (``BonusReceipt.created=False``); an entry
found ``sent`` on a later run, however much later, is first looked up in the marketplace's bonus
list for its assignment (``pay_planned``), because MTurk forgets a token after 24 hours.
Prolific's pay call takes no token at all and pays asynchronously, so a ``sent`` entry is looked
up only once the connector's ``bonus_settle_s`` has passed since it was sent.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import literal
from sqlmodel import select

from campaigns.money.budget import reserve
from campaigns.quality.trust import policy_for, worker_inputs
from campaigns.spec.model import Pricing
from campaigns.spec.stored import campaign_spec
from campaigns.store.checkpoints import checkpoint
from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, LedgerEntry, Stage, utcnow
from connectors.base import Connector, ConnectorError
from payouts.fees import fee_schedule
from payouts.pricing import effective_hourly_wage, wage_topup
from payouts.trust import Action, decide, score


@dataclass
class BonusResult:
    planned: int = 0  # newly booked this poll
    paid: int = 0  # confirmed this poll (new payments and recognised repeats)
    refused: int = 0  # left out: they would pass the budget cap
    failed: int = 0  # the marketplace refused them


def bonus_key(provider: str, policy: str, assignment_id: str) -> str:
    return f"bonus:{provider}:{policy}:{assignment_id}"


def fee_key(bonus_idempotency_key: str) -> str:
    return f"fee:{bonus_idempotency_key}"


def stage_pricing(campaign: Campaign, stage: Stage) -> Pricing:
    spec = campaign_spec(campaign)
    override = spec.stages.get(stage.name)
    return override.pricing if override and override.pricing else spec.pricing


def page_seconds(store: Store, stage: Stage) -> list[float]:
    """Measured work time (accept to submit) of every assignment of the stage, in seconds."""
    with store.session() as s:
        rows = s.exec(
            select(Assignment.accepted_at, Assignment.submitted_at).where(Assignment.stage_id == stage.id)
        ).all()
    return [(b - a).total_seconds() for a, b in rows if a and b and b > a]


def measured_wage(store: Store, stage: Stage) -> tuple[Decimal | None, float | None, int]:
    """(effective hourly wage, median seconds per page, assignments timed) for the stage."""
    seconds = page_seconds(store, stage)
    if not seconds:
        return None, None, 0
    median = statistics.median(seconds)
    return effective_hourly_wage(stage.reward, Decimal(str(median))), median, len(seconds)


def plan_bonuses(store: Store, campaign: Campaign, stage: Stage) -> list[tuple[str, str, str, Decimal, str]]:
    """Bonuses the policies call for: (policy, assignment id, worker, amount, reason to the worker).
    Only approved assignments without that policy's bonus in the ledger are read: one booked
    before is never booked again (its idempotency key), so it need not be read again either."""
    spec = campaign_spec(campaign)
    pricing = stage_pricing(campaign, stage)
    out: list[tuple[str, str, str, Decimal, str]] = []
    if spec.review.quality_bonus and (approved := unbooked(store, campaign, stage, "quality")):
        policy = policy_for(campaign)
        trusted = {
            w
            for w, x in worker_inputs(store, campaign).items()
            if decide(score(x, policy), policy) == Action.trust
        }
        out += [
            (
                "quality",
                aid,
                w,
                spec.review.quality_bonus,
                "Quality bonus: thank you for careful, accurate work.",
            )
            for aid, w in approved
            if w in trusted
        ]
    if pricing.wage_topup and pricing.hourly_wage is not None and (approved := unbooked(store, campaign, stage,
                                                                                         "topup")):
        _, median, timed = measured_wage(store, stage)
        if median is not None and timed >= pricing.topup_after:
            amount = wage_topup(stage.reward, Decimal(str(median)), pricing.hourly_wage,
                                fee_schedule(campaign.provider).places)
            if amount > 0:
                reason = (
                    f"Wage top-up: this task took longer than planned; we pay ${pricing.hourly_wage}/hour."
                )
                out += [("topup", aid, w, amount, reason) for aid, w in approved]
    return out


def unbooked(store: Store, campaign: Campaign, stage: Stage, policy: str) -> list[tuple[str, str]]:
    """(assignment id, worker) of the stage's approved assignments with no ``policy`` bonus in the
    ledger, in the order they were stored: an anti-join on the bonus's idempotency key."""
    key = literal(bonus_key(campaign.provider, policy, "")) + Assignment.assignment_id
    with store.session() as s:
        return list(s.exec(
            select(Assignment.assignment_id, Assignment.worker_id)
            .outerjoin(LedgerEntry, LedgerEntry.idempotency_key == key)
            .where(Assignment.stage_id == stage.id, Assignment.review == "approved", LedgerEntry.id.is_(None))
            .order_by(Assignment.id)
        ).all())


def pay_bonuses(store: Store, conn: Connector, campaign: Campaign, stage: Stage) -> BonusResult:
    """Book what the policies call for (within the cap), then pay every planned bonus of the stage."""
    result = BonusResult()
    schedule = fee_schedule(campaign.provider)
    wanted = plan_bonuses(store, campaign, stage)
    if wanted:
        now = utcnow()
        groups = []
        for policy, aid, worker, amount, reason in wanted:
            key = bonus_key(campaign.provider, policy, aid)
            common = dict(
                stage_id=stage.id,
                provider=campaign.provider,
                worker_id=worker,
                assignment_id=aid,
                created_at=now,
                updated_at=now,
            )
            groups.append(
                [
                    dict(common, idempotency_key=key, kind="bonus", amount=amount, reason=reason),
                    dict(
                        common,
                        idempotency_key=fee_key(key),
                        kind="fee",
                        amount=schedule.bonus_fee(amount),
                        reason=f"fee on {key}",
                    ),
                ]
            )
        booked = reserve(store, campaign.id, groups, scope=f"{campaign.name} bonuses")
        result.planned, result.refused = len(booked.booked), len(booked.refused)
    paid, failed = pay_planned(store, conn, campaign, stage_id=stage.id)
    result.paid, result.failed = paid, failed
    return result


def pay_planned(
    store: Store, conn: Connector, campaign: Campaign, stage_id: int | None = None
) -> tuple[int, int]:
    """Pay every ``planned`` bonus of the campaign (or one stage); returns (confirmed, failed).
    A retryable marketplace error stops this round and leaves the rest planned for the next poll.

    A bonus is marked ``sent`` before the call and ``confirmed`` after it, so one left ``sent``
    was interrupted between the two. Its idempotency token may have expired since (MTurk forgets
    one after 24 h), so it is settled from the marketplace's own bonus list for the assignment and
    sent again only if that list lacks it."""
    with store.session() as s:
        q = select(LedgerEntry).where(
            LedgerEntry.campaign_id == campaign.id,
            LedgerEntry.kind == "bonus",
            LedgerEntry.state.in_(["planned", "sent"]),
        )
        if stage_id is not None:
            q = q.where(LedgerEntry.stage_id == stage_id)
        todo = s.exec(q.order_by(LedgerEntry.id)).all()
    paid = failed = 0
    settle = timedelta(seconds=getattr(conn, "bonus_settle_s", 0) or 0)
    for entry in todo:
        if entry.state == "sent" and settle and _as_utc(entry.updated_at) + settle > utcnow():
            continue  # the marketplace pays asynchronously: what it paid shows only after a while
        if entry.state == "sent" and _already_paid(store, conn, entry):
            _settle(store, campaign.id, entry.idempotency_key, "confirmed", None, note="found on the marketplace")
            paid += 1
            continue
        _settle(store, campaign.id, entry.idempotency_key, "sent", None)
        checkpoint("bonus.before_call")
        try:
            receipt = conn.pay_bonus(
                entry.worker_id,
                entry.assignment_id,
                entry.amount,
                entry.reason or "Bonus",
                idempotency_key=entry.idempotency_key,
            )
        except ConnectorError as exc:
            if exc.retryable:
                break  # stays `sent`: the next round asks the marketplace before sending again
            _settle(store, campaign.id, entry.idempotency_key, "failed", None, note=str(exc)[:500])
            failed += 1
            continue
        checkpoint("bonus.after_call")
        _settle(store, campaign.id, entry.idempotency_key, "confirmed", receipt.provider_ref)
        paid += 1
    return paid, failed


def _as_utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _already_paid(store: Store, conn: Connector, entry: LedgerEntry) -> bool:
    """Whether the marketplace holds more bonuses of this amount for the assignment than the
    ledger has confirmed: then one of them is this entry's interrupted payment."""
    on_market = sum(b["amount"] == entry.amount for b in conn.list_bonuses(assignment_id=entry.assignment_id))
    with store.session() as s:
        confirmed = len(s.exec(select(LedgerEntry.id).where(
            LedgerEntry.kind == "bonus", LedgerEntry.assignment_id == entry.assignment_id,
            LedgerEntry.amount == entry.amount, LedgerEntry.state == "confirmed")).all())
    return on_market > confirmed


def _settle(store: Store, campaign_id: int, key: str, state: str, provider_ref: str | None,
            note: str | None = None) -> None:
    """Move a bonus and its fee entry to ``state`` together, under the campaign lock: a budget
    check reads spent and planned money in two statements, and on PostgreSQL each sees what was
    committed before it, so an entry moving from planned to confirmed in between would be in
    neither and the check would book past the cap (seen once in CI: 0.48 spent under a 0.45 cap)."""
    with store.write() as s:
        store.lock_campaign(s, campaign_id)
        for row in s.exec(
            select(LedgerEntry).where(LedgerEntry.idempotency_key.in_([key, fee_key(key)]))
        ).all():
            row.state, row.updated_at = state, utcnow()
            if provider_ref:
                row.provider_ref = provider_ref
            if note:
                row.reason = f"{row.reason or ''} [{note}]".strip()
            s.add(row)
