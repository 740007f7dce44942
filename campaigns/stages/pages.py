"""A stage's pages in the store and as a connector sees them.

Writing: ``add_stage`` writes a planned stage (tasks, pages, its cursor row); ``add_tasks`` puts
tasks an item needs later (a per-item stage graph) on new pages, with deterministic keys and
insert-ignore, so a step redone after a crash writes nothing twice. Reading: ``neutral_page`` and
``batch_spec_for`` are what a connector publishes; ``page_refs`` is the one list of a stage's own
publications that a campaign reads, closes and reconciles; ``refresh_pages`` marks pages done.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import update
from sqlmodel import func, select

from campaigns.quality.pools import lane_pools, requirements_for
from campaigns.spec.stored import campaign_spec
from campaigns.stages.plan import StagePlan, first_stage, node_of, page_seconds_estimate, stage_shape
from campaigns.store import keys
from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, Page, PollCursor, Publication, Stage, Task
from connectors.base import BatchSpec, Connector, PageItem, PoolRequirement, PoolSpec
from connectors.base import Page as NeutralPage
from decomposition.kinds import TaskDraft, get_kind


def add_stage(s, campaign: Campaign, plan: StagePlan, reward: Decimal, item_ids: dict[str, int]) -> Stage:
    """Write one planned stage: its tasks and pages. Shared by launch and stage advancement."""
    stage = Stage(campaign_id=campaign.id, name=plan.name, kind=plan.kind,
                  batch_idempotency_key=keys.batch_key(campaign.name, plan.name), reward=reward,
                  assignments_per_page=plan.assignments, max_assignments_per_page=plan.max_assignments,
                  settings=plan.settings, status="planned")
    s.add(stage)
    s.flush()
    s.add(PollCursor(stage_id=stage.id))
    tasks: dict[str, Task] = {}
    for draft in plan.tasks:
        key = keys.short_id(campaign.name, plan.name, draft.key, prefix="k", length=11)
        tasks[draft.key] = Task(stage_id=stage.id, item_id=item_ids.get(draft.item_id), key=key,
                                key_hint=draft.key, payload=draft.payload, golden=draft.golden_answer is not None,
                                golden_answer=draft.golden_answer)
    s.add_all(tasks.values())
    s.flush()
    for index, page_drafts in enumerate(plan.pages):
        page = Page(stage_id=stage.id, page_key=keys.short_id(campaign.name, plan.name, index, prefix="pg"),
                    task_keys=[tasks[d].key for d in page_drafts], assignments=plan.assignments)
        s.add(page)
        s.flush()
        for d in page_drafts:
            tasks[d].page_id = page.id
    return stage


def add_tasks(store: Store, s, campaign: Campaign, stage: Stage, drafts: list[TaskDraft],
              item_ids: dict[str, int]) -> None:
    """Write drafts as tasks and put the new ones on pages (deterministic keys, insert-ignore)."""
    rows = [dict(stage_id=stage.id, item_id=item_ids.get(d.item_id), key_hint=d.key, payload=d.payload,
                 key=keys.short_id(campaign.name, stage.name, d.key, prefix="k", length=11), golden=False)
            for d in drafts]
    store.insert_ignore(s, Task, rows, ["stage_id", "key"])
    # Grouped by item and hint, not by key: a key hashes the campaign name, and the grouping of tasks
    # onto pages must not change with the name (a seeded demo gets a fresh name every run).
    fresh = s.exec(select(Task).where(Task.stage_id == stage.id, Task.key.in_([r["key"] for r in rows]),
                                      Task.page_id.is_(None)).order_by(Task.item_id, Task.key_hint, Task.key)).all()
    page_size = stage_shape(campaign_spec(campaign), stage.name)[0]
    for start in range(0, len(fresh), page_size):
        chunk = fresh[start:start + page_size]
        page = Page(stage_id=stage.id, page_key=keys.short_id(campaign.name, stage.name, *[t.key for t in chunk],
                                                              prefix="pg"),
                    task_keys=[t.key for t in chunk], assignments=stage.assignments_per_page)
        s.add(page)
        s.flush()
        for t in chunk:
            t.page_id = page.id
            s.add(t)


def neutral_page(campaign: Campaign, stage: Stage, page: Page, tasks: list[Task]) -> NeutralPage:
    kind = get_kind(stage.kind)
    settings = stage.settings or {}
    items = [PageItem(item_key=t.key, widgets=kind.widgets(t.payload, settings), golden=t.golden,
                      known_answer=t.golden_answer if t.golden else None)
             for t in tasks]
    return NeutralPage(page_id=page.page_key, idempotency_key=keys.page_key(campaign.name, stage.name, page.page_key),
                       items=items, assignments=page.assignments, lane=page.lane)


def batch_spec_for(campaign: Campaign, stage: Stage, conn: Connector, *, creating: bool = True) -> BatchSpec:
    """The stage's batch as the connector sees it. Who may work on it (pools, screening, lanes)
    matters only when the batch is created, and finding each pool costs a marketplace call, so
    without ``creating`` those are left empty."""
    spec = campaign_spec(campaign)
    requirements = requirements_for(campaign, stage.name, conn) if creating else []
    overrides = spec.stages.get(stage.name)
    page_size = stage_shape(spec, stage.name)[0]
    golden_per_page = round(page_size * spec.golden.rate) if stage.name == first_stage(spec).name else 0
    node = node_of(spec, stage.name)
    title, description = node.title or spec.title, node.description or spec.description
    lanes = {name: [PoolRequirement(pool=conn.ensure_pool(PoolSpec(name=pool)))]
             for name, pool in lane_pools(campaign, stage).items()} if creating else {}
    return BatchSpec(batch_id=f"{campaign.name}/{stage.name}", idempotency_key=stage.batch_idempotency_key,
                     stage=stage.name, kind=stage.kind, title=title, description=description,
                     instructions=(overrides.instructions if overrides and overrides.instructions else
                                   spec.instructions),
                     keywords=spec.keywords, reward=stage.reward, assignments_per_page=stage.assignments_per_page,
                     assignment_duration_s=spec.assignment_duration_s,
                     estimated_duration_s=page_seconds_estimate(spec, stage.name), lifetime_s=spec.lifetime_s,
                     auto_approval_delay_s=spec.auto_approval_delay_s, requirements=requirements,
                     locales=spec.locales, golden_per_page=golden_per_page,
                     real_per_page=max(1, page_size - golden_per_page), lanes=lanes)


def page_refs(store: Store, stage_id: int, *, open_only: bool = False) -> list[str]:
    """The marketplace refs of the stage's own publications (only pages not yet done, with
    ``open_only``): the one list a campaign reads, closes and reconciles, so it never touches
    another campaign's work that shares its HIT type."""
    with store.session() as s:
        q = select(Publication.provider_ref).join(Page, Page.id == Publication.page_id).where(Page.stage_id == stage_id)
        if open_only:
            q = q.where(Page.status != "done")
        return sorted(s.exec(q).all())


def refresh_pages(store: Store, stage_id: int) -> tuple[int, int]:
    """Mark pages done whose every assignment came back; returns (done, total). Pages the
    marketplace reports as having no work left are marked by the poll's pages step
    (``engine.steps.pages.mark_finished``: only if unchanged since its fetch). Only open pages are
    read and counted (``ix_pages_open``): a done page stays done, so its answers need no recount."""
    with store.write() as s:
        open_pages = s.exec(select(Page.id, Page.assignments, func.count(Assignment.id))
                            .outerjoin(Assignment, Assignment.page_id == Page.id)
                            .where(Page.stage_id == stage_id, Page.status != "done")
                            .group_by(Page.id, Page.assignments)).all()
        now_done = sorted(pid for pid, wanted, got in open_pages if got >= wanted)
        if now_done:  # by primary key, in id order (two pollers lock rows in one order)
            s.execute(update(Page), [{"id": pid, "status": "done"} for pid in now_done])
        total = s.exec(select(func.count()).select_from(Page).where(Page.stage_id == stage_id)).one()
        return total - (len(open_pages) - len(now_done)), total
