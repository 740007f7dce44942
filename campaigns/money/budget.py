"""Engine side of the budget cap: what a campaign has spent and committed, read from the store,
and the one atomic step that checks the cap and books planned spend together.

Why here and not in ``payouts.budget``: the arithmetic (``check_budget``) is pure; what makes
a cap hold under concurrent pollers is doing *read spend, decide, insert planned entries* in
one ``Store.write()`` transaction that holds ``store.lock_campaign`` (SQLite: the database's
write lock; PostgreSQL: ``FOR UPDATE`` on the campaign row). A second poller then waits and
sees the first one's planned entries as committed money.

Committed money is what the campaign has promised but not yet paid:
- ledger entries in state ``planned`` (bonuses queued, and their fees);
- open slots of published pages (assignments not yet submitted) at reward + fee;
- submitted assignments not yet reviewed, at reward + fee.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlmodel import Session, func, select

from campaigns.errors import CrowdError
from campaigns.money.review import UNREVIEWED
from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, LedgerEntry, Page, Stage
from payouts.budget import BudgetCheck, affordable_pages, check_budget
from payouts.fees import fee_schedule

SPENT = ("sent", "confirmed")


@dataclass(frozen=True)
class SpendState:
    spent: Decimal
    committed: Decimal
    cap: Decimal | None

    @property
    def left(self) -> Decimal | None:
        return None if self.cap is None else self.cap - self.spent - self.committed


def outstanding_work(s: Session, campaign_id: int) -> Decimal:
    """Reward + fee of every published-but-unsubmitted slot and every unreviewed assignment.
    Read from published pages and unreviewed assignments only (``ix_pages_stage_id_status``,
    ``ix_assignments_stage_id_review``): a done page has no open slot, a reviewed one costs nothing more."""
    stages = {st.id: st for st in s.exec(select(Stage).where(Stage.campaign_id == campaign_id)).all()}
    if not stages:
        return Decimal("0.00")
    campaign = s.get(Campaign, campaign_id)
    schedule = fee_schedule(campaign.provider)
    # Pages of one stage differ only in their assignment count (the fee depends on it): count
    # outstanding assignments per (stage, assignments) and price each group once.
    slots: Counter[tuple[int, int]] = Counter()
    for sid, n, got in s.exec(
        select(Page.stage_id, Page.assignments, func.count(Assignment.id))
        .outerjoin(Assignment, Assignment.page_id == Page.id)
        .where(Page.stage_id.in_(list(stages)), Page.status == "published")
        .group_by(Page.id, Page.stage_id, Page.assignments)
    ).all():
        slots[(sid, n)] += max(0, n - got)
    for sid, n, count in s.exec(
        select(Page.stage_id, Page.assignments, func.count())
        .select_from(Assignment)
        .join(Page, Page.id == Assignment.page_id)
        .where(Assignment.stage_id.in_(list(stages)), Assignment.review.in_(UNREVIEWED))
        .group_by(Page.stage_id, Page.assignments)
    ).all():
        slots[(sid, n)] += count
    total = Decimal("0.00")
    for (sid, n), count in slots.items():
        if count:
            reward = stages[sid].reward
            total += count * (reward + schedule.assignment_fee(reward, n))
    return total


def spend_state(store: Store, s: Session, campaign_id: int) -> SpendState:
    """Spent (ledger sent/confirmed) and committed (see the module docstring) of one campaign."""
    campaign = s.get(Campaign, campaign_id)
    if campaign is None:
        raise CrowdError(f"no campaign with id {campaign_id}")
    spent = store.ledger_sum(s, campaign_id, states=SPENT)
    committed = store.ledger_sum(s, campaign_id, states=["planned"]) + outstanding_work(s, campaign_id)
    return SpendState(spent=spent, committed=committed, cap=campaign.budget_cap)


def check_spend(store: Store, campaign_id: int, proposed: Decimal, scope: str) -> BudgetCheck:
    """May the campaign spend ``proposed`` more (a publish chunk, an extension)? Read under the
    campaign lock, so it sees every planned entry another poller committed before it."""
    with store.write() as s:
        store.lock_campaign(s, campaign_id)
        state = spend_state(store, s, campaign_id)
        return check_budget(state.cap, state.spent, state.committed, proposed, scope=scope)


def pages_affordable(store: Store, campaign_id: int, cost_per_page: Decimal) -> int | None:
    """How many more pages of ``cost_per_page`` fit under the campaign's cap (None: no cap)."""
    with store.write() as s:
        store.lock_campaign(s, campaign_id)
        state = spend_state(store, s, campaign_id)
    return affordable_pages(state.cap, state.spent, state.committed, cost_per_page)


def guard_spend(store: Store, campaign_id: int, proposed: Decimal, scope: str) -> BudgetCheck:
    """``check_spend`` that refuses in one line (``CrowdError``) when the cap would be passed."""
    verdict = check_spend(store, campaign_id, proposed, scope)
    if not verdict.allowed:
        raise CrowdError(f"budget cap reached: {verdict.reason}")
    return verdict


@dataclass
class Reservation:
    """What ``reserve`` booked: indices of the groups written (or found already written) and of
    those refused because they would pass the cap."""

    booked: list[int] = field(default_factory=list)
    existing: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    last: BudgetCheck | None = None


def reserve(store: Store, campaign_id: int, groups: list[list[dict[str, Any]]], scope: str) -> Reservation:
    """Book ledger rows as ``planned``, group by group in order, while they fit under the cap.

    A group is the entries that must exist together (a bonus and its fee). Groups whose
    idempotency keys are already in the ledger are left alone (``existing``), so calling this
    again after a crash books nothing twice. Check and insert share one locked transaction.
    """
    out = Reservation()
    with store.write() as s:
        store.lock_campaign(s, campaign_id)
        keys = [row["idempotency_key"] for g in groups for row in g]
        known = (
            set(
                s.exec(select(LedgerEntry.idempotency_key).where(LedgerEntry.idempotency_key.in_(keys))).all()
            )
            if keys
            else set()
        )
        state = spend_state(store, s, campaign_id)
        committed = state.committed
        for i, group in enumerate(groups):
            if any(row["idempotency_key"] in known for row in group):
                out.existing.append(i)
                continue
            proposed = sum((Decimal(row["amount"]) for row in group), Decimal("0"))
            verdict = check_budget(state.cap, state.spent, committed, proposed, scope=scope)
            out.last = verdict
            if not verdict.allowed:
                out.refused.append(i)
                continue
            rows = [{**row, "state": "planned", "campaign_id": campaign_id} for row in group]
            store.insert_ignore(s, LedgerEntry, rows, ["idempotency_key"])
            committed += proposed
            out.booked.append(i)
    return out


def pages_cost(provider: str, reward: Decimal, assignments: list[int]) -> Decimal:
    """Reward + fee of every assignment of pages with these assignment counts (a publish chunk)."""
    schedule = fee_schedule(provider)
    return sum((n * (reward + schedule.assignment_fee(reward, n)) for n in assignments), Decimal("0.00"))


def guard_publish(store: Store, campaign: Campaign, stage: Stage, pages: list[Page]) -> BudgetCheck:
    """The check ``publish_stage`` makes before each chunk: refuse in one line past the cap."""
    cost = pages_cost(campaign.provider, stage.reward, [p.assignments for p in pages])
    return guard_spend(store, campaign.id, cost, scope=f"{campaign.name}/{stage.name} publish")
