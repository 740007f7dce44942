"""Finishing: a stage is done when its pages are all done and reviewed and no item can still add
work to it; the campaign is done when every stage is. A finished stage's results come from its
stage graph (``StageGraph.finish``: one aggregation over the whole stage, as Bradley-Terry and
Dawid-Skene need) and are stored on its tasks and items, so exports and reports read them
without re-aggregating. A per-item graph's items first take their own next step
(``engine.advance``), which may give later stages new pages.
"""

from __future__ import annotations

from sqlmodel import select

from campaigns.engine.advance import advance_items, can_grow, task_view
from campaigns.money.review import UNREVIEWED
from campaigns.quality.pools import blocked_workers
from campaigns.stages.pages import page_refs
from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, Item, Judgement, Page, Stage, Task
from connectors.base import BatchRef, Connector
from decomposition.graph import StoredJudgement, TaskView, get_graph

DEFAULT_METHOD = "ds"


def finish_stages(store: Store, conn: Connector, campaign_id: int) -> None:
    with store.session() as s:
        campaign = s.get(Campaign, campaign_id)
    graph = get_graph(campaign.kind)
    advance_items(store, conn, campaign)
    with store.session() as s:
        stages = s.exec(select(Stage).where(Stage.campaign_id == campaign_id).order_by(Stage.id)).all()
    for stage in stages:
        if stage.status not in ("open", "planned"):
            continue
        with store.session() as s:  # whether any is left, not how many: one index entry (ix_pages_open, ...)
            open_pages = s.exec(select(Page.id).where(Page.stage_id == stage.id, Page.status != "done")
                                .limit(1)).first() is not None
            unreviewed = s.exec(select(Assignment.id).where(
                Assignment.stage_id == stage.id, Assignment.review.in_(UNREVIEWED)).limit(1)).first() is not None
        if open_pages or unreviewed or (stage.status == "planned" and not graph.per_item):
            continue
        if can_grow(store, campaign, stage):
            continue
        finalize_stage(store, campaign, stage)
        if stage.batch_ref:
            conn.close(BatchRef.model_validate(stage.batch_ref), page_refs(store, stage.id))
        with store.write() as s:
            st = s.get(Stage, stage.id)
            st.status = "done"
            s.add(st)
    with store.write() as s:
        statuses = s.exec(select(Stage.status).where(Stage.campaign_id == campaign_id)).all()
        if statuses and all(x == "done" for x in statuses):
            c = s.get(Campaign, campaign_id)
            c.status = "done"
            s.add(c)


def stage_judgements(store: Store, stage: Stage) -> list[StoredJudgement]:
    """Valid judgements of the stage's work not rejected, by workers not blocked, in the order
    they were stored: what a stage's results are aggregated from."""
    with store.session() as s:
        provider = s.get(Campaign, stage.campaign_id).provider
        blocked = blocked_workers(s, provider)
        q = (select(Judgement.worker_id, Judgement.value, Task.key, Task.payload, Task.golden, Task.golden_answer)
             .join(Task, Task.id == Judgement.task_id)
             .join(Assignment, Assignment.id == Judgement.assignment_pk)
             .where(Judgement.stage_id == stage.id, Judgement.valid, Assignment.review != "rejected")
             .order_by(Judgement.id))
        return [StoredJudgement(task_key=key, payload=payload, golden=golden, golden_answer=answer, worker=worker,
                                value=value)
                for worker, value, key, payload, golden, answer in s.exec(q).all() if worker not in blocked]


def stage_tasks(store: Store, stage: Stage) -> list[TaskView]:
    with store.session() as s:
        return [task_view(t) for t in s.exec(select(Task).where(Task.stage_id == stage.id).order_by(Task.id)).all()]


def finalize_stage(store: Store, campaign: Campaign, stage: Stage, method: str = DEFAULT_METHOD) -> None:
    """Store the results of a finished stage on its tasks and items (nothing for a per-item graph)."""
    graph = get_graph(campaign.kind)
    if graph.per_item:
        return  # its results are assembled per item as it finishes (engine.advance)
    with store.session() as s:
        items = [i for i in s.exec(select(Item.external_id).where(Item.campaign_id == campaign.id)
                                   .order_by(Item.id)).all()]
    results = graph.finish(graph.node(stage.name), stage_judgements(store, stage), stage_tasks(store, stage),
                           items, method)
    if results is None:
        return
    with store.write() as s:
        for t in s.exec(select(Task).where(Task.stage_id == stage.id, Task.golden.is_(False))).all():
            if t.key in results.tasks:
                t.result = results.tasks[t.key]
                s.add(t)
        for item in s.exec(select(Item).where(Item.campaign_id == campaign.id)).all():
            if item.external_id in results.items:
                item.result = results.items[item.external_id]
                s.add(item)
