"""Money booked per item: what an item's finished result and the audit export say it cost."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from sqlalchemy import BigInteger, type_coerce
from sqlmodel import func, select

from campaigns.store.models import Assignment, Campaign, LedgerEntry, Page, Stage, Task, money_from_micros


def item_costs(s, campaign: Campaign, item_ids: list[int] | None = None) -> dict[int, Decimal]:
    """Each assignment's ledger entries (reward, fee, bonus) shared evenly among the tasks on its
    page, summed per item over every stage."""
    micros = func.sum(type_coerce(LedgerEntry.amount, BigInteger))
    entries = s.exec(select(Assignment.page_id, micros)
                     .join(Assignment, Assignment.assignment_id == LedgerEntry.assignment_id)
                     .where(LedgerEntry.campaign_id == campaign.id, LedgerEntry.state.in_(["sent", "confirmed"]),
                            Assignment.provider == campaign.provider)
                     .group_by(Assignment.page_id)).all()
    per_page = {pid: money_from_micros(total) for pid, total in entries}
    q = select(Task.item_id, Task.page_id, Page.task_keys).join(Page, Page.id == Task.page_id).join(
        Stage, Stage.id == Task.stage_id).where(Stage.campaign_id == campaign.id, Task.item_id.is_not(None))
    if item_ids is not None:
        q = q.where(Task.item_id.in_(item_ids))
    out: dict[int, Decimal] = defaultdict(Decimal)
    for item_id, page_id, task_keys in s.exec(q).all():
        out[item_id] += per_page.get(page_id, Decimal(0)) / max(1, len(task_keys))
    return {k: v.quantize(Decimal("0.000001")) for k, v in out.items()}
