"""Moving items through a per-item stage graph (``decomposition.graph``), for any kind.

After every poll, ``advance_items`` looks at the items whose current stage's pages are all done
and reviewed, asks the graph for each one's next step, and writes it in one store transaction:
the item's new state in ``Item.result`` together with the next stage's tasks and pages, keyed
deterministically and inserted with insert-ignore. Only then does it publish pages that have no
publication yet. A crash anywhere leaves either nothing written (the step is redone) or pages
that the next call publishes, each once (the connector's idempotency keys).

An item whose tasks have fewer usable answers than the stage's minimum first gets more
assignments (``_top_up``); the graph says which answers are usable (``StageGraph.usable``).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from sqlmodel import select

from campaigns.money.item_costs import item_costs
from campaigns.quality.pools import blocked_workers
from campaigns.spec.stored import campaign_spec
from campaigns.stages.pages import add_stage, add_tasks
from campaigns.stages.plan import empty_plan, price_stage
from campaigns.stages.publish import publish_new_pages
from campaigns.store.checkpoints import checkpoint
from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, Item, Judgement, Page, Stage, Task
from connectors.base import Connector
from decomposition.graph import DONE, ItemView, StageGraph, TaskView, get_graph
from decomposition.kinds import TaskDraft

SETTLED_REVIEW = ("approved", "rejected")


def can_grow(store: Store, campaign: Campaign, stage: Stage) -> bool:
    """Whether some item may still add work to ``stage`` (it has not got past it yet)."""
    graph = get_graph(campaign.kind)
    if not graph.per_item:
        return False
    with store.session() as s:
        results = s.exec(select(Item.result).where(Item.campaign_id == campaign.id)).all()
    here = graph.order(stage.name)
    return any(graph.order(graph.state_of(r)) <= here for r in results)


def advance_items(store: Store, conn: Connector, campaign: Campaign) -> dict[str, int]:
    """Move every ready item one step; publish the pages that step created. Returns how many items
    moved out of each stage (nothing for a graph whose results come per stage)."""
    graph = get_graph(campaign.kind)
    if not graph.per_item:
        return {}
    spec = campaign_spec(campaign)
    settings = graph.settings(spec.settings)
    stages = ensure_stages(store, campaign, graph)
    moved = {n.name: 0 for n in graph.nodes}
    with store.write() as s:
        store.lock_campaign(s, campaign.id)
        items = list(s.exec(select(Item).where(Item.campaign_id == campaign.id).order_by(Item.id)).all())
        blocked = blocked_workers(s, campaign.provider)
        drafts: dict[str, list[TaskDraft]] = defaultdict(list)
        for node in graph.nodes:
            waiting = {i.id: i for i in items if graph.state_of(i.result) == node.name}
            ready = _ready(s, stages[node.name], waiting) if waiting else {}
            if not ready:
                continue
            answers = _answers(s, [t.id for ts in ready.values() for t in ts], blocked)
            context = graph.context(node, settings, _reader(s, stages), blocked)
            for item_id, tasks in ready.items():
                item = waiting[item_id]
                if _top_up(s, campaign, graph, node, stages[node.name], tasks, answers, settings, context):
                    continue  # too few usable answers: its pages get more assignments first
                move = graph.advance(node, ItemView(item.external_id, item.payload, item.result or {}), tasks,
                                     answers, settings, context)
                result = move.result
                if move.state == DONE:
                    result["cost"] = str(item_costs(s, campaign, [item.id]).get(item.id, Decimal(0)))
                item.result = result
                s.add(item)
                drafts[move.state if move.state != DONE else node.name] += move.drafts
                moved[node.name] += move.state != node.name
        for name, ds in drafts.items():
            if ds:
                add_tasks(store, s, campaign, stages[name], ds, {i.external_id: i.id for i in items})
    if any(drafts.values()):
        checkpoint("advance.written")  # new tasks and pages committed, not yet published
    publish_new_pages(store, conn, campaign)
    return moved


def ensure_stages(store: Store, campaign: Campaign, graph: StageGraph) -> dict[str, Stage]:
    """Every stage of the graph exists from the first advance on (no batch until it gets pages)."""
    spec = campaign_spec(campaign)
    with store.write() as s:
        have = {st.name: st for st in s.exec(select(Stage).where(Stage.campaign_id == campaign.id)).all()}
        for node in graph.nodes:
            if node.name not in have:
                plan = empty_plan(spec, node.name)
                have[node.name] = add_stage(s, campaign, plan, price_stage(spec, plan), {})
        return have


def _ready(s, stage: Stage, waiting: dict[int, Item]) -> dict[int, list[TaskView]]:
    """Items (of ``waiting``) whose tasks in ``stage`` are all on pages that are done and reviewed."""
    done = set(s.exec(select(Page.id).where(Page.stage_id == stage.id, Page.status == "done")).all())
    busy = set(s.exec(select(Assignment.page_id).where(Assignment.stage_id == stage.id,
                                                       Assignment.review.not_in(SETTLED_REVIEW))).all())
    tasks: dict[int, list[Task]] = defaultdict(list)
    for t in s.exec(select(Task).where(Task.stage_id == stage.id, Task.item_id.in_(list(waiting)),
                                       Task.golden.is_(False)).order_by(Task.id)).all():
        tasks[t.item_id].append(t)
    return {i: [task_view(t) for t in ts] for i, ts in tasks.items()
            if all(t.page_id in done and t.page_id not in busy for t in ts)}


def task_view(t: Task) -> TaskView:
    return TaskView(id=t.id, key=t.key, payload=t.payload, golden=t.golden, golden_answer=t.golden_answer)


def _answers(s, task_ids: list[int], blocked: set[str]) -> dict[int, list[tuple[str, dict]]]:
    """Valid judgements of approved work by workers not blocked, per task: (worker, value)."""
    out: dict[int, list[tuple[str, dict]]] = defaultdict(list)
    rows = s.exec(select(Judgement.task_id, Judgement.worker_id, Judgement.value)
                  .join(Assignment, Assignment.id == Judgement.assignment_pk)
                  .where(Judgement.task_id.in_(task_ids), Judgement.valid, Assignment.review == "approved")
                  .order_by(Judgement.id)).all()
    for task_id, worker, value in rows:
        if worker not in blocked:
            out[task_id].append((worker, value))
    return out


def _reader(s, stages: dict[str, Stage]):
    """``read(stage, approved)``: a whole stage's valid judgements as (worker, value), of approved
    work only with ``approved`` (what a graph's ``context`` reads, in the step's transaction)."""
    def read(name: str, approved: bool) -> list[tuple[str, dict]]:
        q = select(Judgement.worker_id, Judgement.value).where(Judgement.stage_id == stages[name].id, Judgement.valid)
        if approved:
            q = q.join(Assignment, Assignment.id == Judgement.assignment_pk).where(Assignment.review == "approved")
        return list(s.exec(q).all())
    return read


def _top_up(s, campaign: Campaign, graph: StageGraph, node, stage: Stage, tasks: list[TaskView], answers,
            settings, context) -> bool:
    """Ask for more assignments on pages where a task of the item has fewer usable answers than
    the stage's minimum, up to twice the stage's overlap. Only the intent is written
    (``extending``); the poll's extensions step carries it out once on the marketplace. True when
    the item has to wait for it."""
    cap = 2 * stage.assignments_per_page
    if campaign.provider == "mturk" and stage.assignments_per_page < 10:
        cap = min(cap, 9)  # MTurk cannot take a HIT made with fewer than 10 assignments to 10
    minimum = graph.minimum(node, settings)
    need: dict[int, int] = {}
    for t in (tasks[-1:] if node.latest_only else tasks):
        got = graph.usable(node, t, answers[t.id], context)
        if len(got) < minimum:
            page_id = s.get(Task, t.id).page_id
            need[page_id] = max(need.get(page_id, 0), minimum - len(got))
    waiting = False
    for page_id, extra in need.items():
        page = s.get(Page, page_id)
        room = cap - page.assignments
        if room > 0:
            page.assignments, page.status = page.assignments + min(extra, room), "extending"
            s.add(page)
            waiting = True
    return waiting
