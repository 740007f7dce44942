"""Read-only views over the store for ``crowd status`` and ``crowd costs``."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from sqlmodel import func, select

from campaigns.errors import CrowdError
from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, Item, LedgerEntry, Page, Stage, Task
from payouts.report import LedgerRecord, cost_report

GROUPS = ("campaign", "stage", "provider", "day", "worker")


def _campaigns(s, name: str | None) -> list[Campaign]:
    q = select(Campaign).order_by(Campaign.id)
    if name is not None:
        q = q.where(Campaign.name == name)
    found = s.exec(q).all()
    if name is not None and not found:
        raise CrowdError(f"no campaign named {name!r}")
    return list(found)


def status(store: Store, campaign: str | None = None) -> dict:
    with store.session() as s:
        out = []
        for c in _campaigns(s, campaign):
            stages = []
            for st in s.exec(select(Stage).where(Stage.campaign_id == c.id).order_by(Stage.id)).all():
                pages = dict(s.exec(select(Page.status, func.count()).where(Page.stage_id == st.id)
                                    .group_by(Page.status)).all())
                reviews = dict(s.exec(select(Assignment.review, func.count()).where(Assignment.stage_id == st.id)
                                      .group_by(Assignment.review)).all())
                stages.append({"name": st.name, "kind": st.kind, "status": st.status,
                               "pages": sum(pages.values()), "pages_done": pages.get("done", 0),
                               "assignments": sum(reviews.values()), "approved": reviews.get("approved", 0),
                               "rejected": reviews.get("rejected", 0),
                               "pending": sum(v for k, v in reviews.items() if k not in ("approved", "rejected")),
                               "reward_per_page": st.reward, "assignments_per_page": st.assignments_per_page})
            out.append({"id": c.id, "name": c.name, "provider": c.provider, "environment": c.environment,
                        "kind": c.kind, "status": c.status, "created_at": c.created_at, "stages": stages})
    return {"campaigns": out}


def costs(store: Store, campaign: str | None = None, *, by: str = "campaign", plot: Path | None = None) -> dict:
    groups = [g.strip() for g in by.split(",") if g.strip()]
    bad = [g for g in groups if g not in GROUPS]
    if bad or not groups:
        raise CrowdError(f"--by must be one or more of {', '.join(GROUPS)} (got {by!r})")
    with store.session() as s:
        cs = _campaigns(s, campaign)
        names = {c.id: c.name for c in cs}
        stage_names = {st.id: st.name for st in s.exec(select(Stage).where(Stage.campaign_id.in_(list(names)))).all()}
        entries = s.exec(select(LedgerEntry).where(LedgerEntry.campaign_id.in_(list(names)))).all()
        records = [LedgerRecord(kind=e.kind, amount=e.amount, state=e.state, campaign=names[e.campaign_id],
                                stage=stage_names.get(e.stage_id, ""), provider=e.provider,
                                worker=e.worker_id or "", created_at=e.created_at) for e in entries]
        summaries = [_campaign_summary(s, c, store) for c in cs]
        series = [spend_series(s, c) for c in cs] if plot is not None else []
    rows = [{**r.group, **r.model_dump(exclude={"group"})} for r in cost_report(records, by=groups)]
    result = {"by": groups, "rows": rows, "campaigns": summaries}
    if plot is not None:
        from campaigns.reports.plot import plot_spend

        plot_spend(series, summaries, plot)
        result["plot"] = {"path": str(plot), "series": series}
    return result


def spend_series(s, c: Campaign) -> dict:
    """Cumulative spend (sent/confirmed ledger entries) of each stage over the marketplace's clock:
    each entry is placed at the submit time of the assignment it pays for (simulated time on a
    local marketplace, real time on a real one), in hours since the campaign's first accepted
    assignment; an entry without an assignment takes the time of the entry booked before it."""
    subs = dict(s.exec(select(Assignment.assignment_id, Assignment.submitted_at).join(Stage)
                       .where(Stage.campaign_id == c.id, Assignment.provider == c.provider)).all())
    start = s.exec(select(func.min(Assignment.accepted_at)).join(Stage).where(Stage.campaign_id == c.id)).one()
    stage_names = dict(s.exec(select(Stage.id, Stage.name).where(Stage.campaign_id == c.id)).all())
    entries = s.exec(select(LedgerEntry).where(LedgerEntry.campaign_id == c.id,
                                               LedgerEntry.state.in_(["sent", "confirmed"]))
                     .order_by(LedgerEntry.id)).all()
    total: list[tuple[float, Decimal]] = []
    stages: dict[str, list[tuple[float, Decimal]]] = defaultdict(list)
    at = None
    for e in entries:
        at = subs.get(e.assignment_id) or at
        hours = (at - start).total_seconds() / 3600 if at is not None and start is not None else 0.0
        total.append((hours, e.amount))
        stages[stage_names.get(e.stage_id, "")].append((hours, e.amount))
    return {"campaign": c.name, "currency": c.currency, "budget_cap": c.budget_cap,
            "total": _cumulative(total), "stages": {k: _cumulative(v) for k, v in stages.items()}}


def _cumulative(steps: list[tuple[float, Decimal]]) -> list[tuple[float, Decimal]]:
    """(hours, amount) steps as (hours, running total) in time order (ledger order may not be)."""
    out, running = [], Decimal("0.00")
    for hours, amount in sorted(steps, key=lambda p: p[0]):
        running += amount
        out.append((hours, running))
    return out


def _campaign_summary(s, c: Campaign, store: Store) -> dict:
    """Spent (ledger sent/confirmed), committed (queued bonuses, published slots and unreviewed
    work, as the budget cap counts it), forecast to completion (+ pages not yet published and the
    follow-up pages adaptive overlap may still add to an unfinished stage),
    budget left, cost per item and per aggregated label, and the measured hourly wage."""
    from campaigns.money.bonuses import measured_wage
    from campaigns.money.budget import pages_cost, spend_state
    from campaigns.spec.stored import campaign_spec
    from campaigns.stages.plan import follow_up_room

    spent = {k: Decimal("0.00") for k in ("reward", "bonus", "fee")}
    for e in s.exec(select(LedgerEntry).where(LedgerEntry.campaign_id == c.id,
                                              LedgerEntry.state.in_(["sent", "confirmed"]))).all():
        spent[e.kind] += e.amount
    total_spent = sum(spent.values(), Decimal("0.00"))
    state = spend_state(store, s, c.id)
    stages = s.exec(select(Stage).where(Stage.campaign_id == c.id).order_by(Stage.id)).all()
    unpublished = Decimal("0.00")
    wages = []
    for st in stages:
        counts = s.exec(select(Page.assignments).where(Page.stage_id == st.id,
                                                       Page.status.in_(["planned", "sending"]))).all()
        unpublished += pages_cost(c.provider, st.reward, list(counts))
        if st.status != "done":
            planned = s.exec(select(func.count()).select_from(Page).where(
                Page.stage_id == st.id, Page.follow_up.is_(False))).one()
            follow_ups = s.exec(select(func.coalesce(func.sum(Page.assignments), 0)).where(
                Page.stage_id == st.id, Page.follow_up)).one()
            room = follow_up_room(campaign_spec(c), planned, st.assignments_per_page,
                                  st.max_assignments_per_page) - follow_ups
            unpublished += pages_cost(c.provider, st.reward, [1] * max(room, 0))
        wage, median, timed = measured_wage(store, st)
        wages.append({"stage": st.name, "reward_per_page": st.reward, "median_seconds_per_page": median,
                      "assignments_timed": timed, "effective_hourly_wage": wage})
    items = s.exec(select(func.count()).select_from(Item).where(Item.campaign_id == c.id)).one()
    labels = s.exec(select(func.count()).select_from(Task).join(Stage, Stage.id == Task.stage_id).where(
        Stage.campaign_id == c.id, Task.golden.is_(False), Task.result.is_not(None))).one()

    def per(n: int) -> Decimal | None:
        return (total_spent / n).quantize(Decimal("0.0001")) if n else None

    return {"campaign": c.name, "provider": c.provider, "currency": c.currency,
            "spent": {**spent, "total": total_spent}, "committed": state.committed,
            "forecast_total": total_spent + state.committed + unpublished,
            "budget_cap": c.budget_cap, "budget_left": state.left,
            "items": items, "cost_per_item": per(items), "labels": labels, "cost_per_label": per(labels),
            "effective_hourly_wage": wages[0]["effective_hourly_wage"] if wages else None, "stages": wages}


def ledger_totals(store: Store, campaign: str) -> dict[str, Decimal]:
    with store.session() as s:
        c = _campaigns(s, campaign)[0]
        totals: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
        for e in s.exec(select(LedgerEntry).where(LedgerEntry.campaign_id == c.id,
                                                  LedgerEntry.state.in_(["sent", "confirmed"]))).all():
            totals[e.kind] += e.amount
    return dict(totals)
