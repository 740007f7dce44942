"""A campaign nothing of which reached a worker may be planned again.

A launch writes its plan (campaign, items, stages, tasks, pages) before it publishes, so a
refusal at publish time (a page too large for MTurk, a field the marketplace rejects) used to leave
a campaign that no corrected spec could replace. While no page was published or sent, and no money
booked, the plan is only ours: ``discard_plan`` removes it, so the corrected spec plans afresh.
"""

from __future__ import annotations

from sqlmodel import delete, func, select

from campaigns.store.database import Store
from campaigns.store.models import Campaign, Item, LedgerEntry, Page, PollCursor, Publication, Stage, Task


def untouched(store: Store, campaign_id: int) -> bool:
    """No page of the campaign published or being sent, and no ledger entry."""
    with store.session() as s:
        stage_ids = s.exec(select(Stage.id).where(Stage.campaign_id == campaign_id)).all()
        out = s.exec(select(func.count()).select_from(Page).where(
            Page.stage_id.in_(stage_ids), Page.status != "planned")).one()
        published = s.exec(select(func.count()).select_from(Publication).join(Page)
                           .where(Page.stage_id.in_(stage_ids))).one()
        money = s.exec(select(func.count()).select_from(LedgerEntry)
                       .where(LedgerEntry.campaign_id == campaign_id)).one()
    return out == published == money == 0


def discard_plan(store: Store, campaign_id: int) -> None:
    """Delete an untouched campaign's plan, children first."""
    with store.write() as s:
        stage_ids = s.exec(select(Stage.id).where(Stage.campaign_id == campaign_id)).all()
        for table in (PollCursor, Task, Page):
            s.exec(delete(table).where(table.stage_id.in_(stage_ids)))
        s.exec(delete(Stage).where(Stage.campaign_id == campaign_id))
        s.exec(delete(Item).where(Item.campaign_id == campaign_id))
        s.exec(delete(Campaign).where(Campaign.id == campaign_id))
