"""Find-Fix-Verify in the engine: each item moves through the stages on its own.

Why per item: a text whose Find answers are all in should not wait for the slowest text of the
campaign before its patches are fixed. After every poll, ``advance_items`` looks at the items
whose current stage's pages are all done and reviewed, computes their next step in one store
transaction (the item's new state in ``Item.result`` together with the next stage's tasks and
pages, keyed deterministically and inserted with insert-ignore), and only then publishes pages
that have no publication yet. A crash anywhere leaves either nothing written (the step is redone)
or pages that the next call publishes, each once (the connector's idempotency keys).

Item states (``Item.result["state"]``): ``find`` -> ``fix`` -> ``verify`` -> ``done``; a text
with no patch goes to ``done`` unchanged or is asked again (``no_patch: reask``), a patch with no
usable rewrite is kept as it was. Verify votes from workers who wrote a candidate for the same
patch are stored but left out of the vote (neither marketplace can exclude them per patch up
front), and counted in the patch's ``excluded_votes``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, type_coerce
from sqlmodel import func, select

from campaigns.quality.pools import blocked_workers
from campaigns.spec.model import CampaignSpec
from campaigns.spec.stored import campaign_spec
from campaigns.store import keys
from campaigns.store.checkpoints import checkpoint
from campaigns.store.database import Store
from campaigns.store.models import (
    Assignment,
    Campaign,
    Item,
    Judgement,
    LedgerEntry,
    Page,
    Publication,
    Stage,
    Task,
    money_from_micros,
)
from connectors.base import Connector
from decomposition.ffv import KEEP, FFVSettings, apply_fixes, candidate_slots, patches_from_spans
from decomposition.kinds import TaskDraft, get_kind

STAGES = ("find", "fix", "verify")
ORDER = {"find": 0, "fix": 1, "verify": 2, "done": 3}
SETTLED_REVIEW = ("approved", "rejected")


def ffv_settings(spec: CampaignSpec) -> FFVSettings:
    return get_kind("find").settings(spec.settings)


def state_of(item: Item) -> str:
    return (item.result or {}).get("state", "find")


def can_grow(store: Store, campaign: Campaign, stage: Stage) -> bool:
    """Whether some item may still add work to ``stage`` (it has not got past it yet)."""
    with store.session() as s:
        results = s.exec(select(Item.result).where(Item.campaign_id == campaign.id)).all()
    return any(ORDER[(r or {}).get("state", "find")] <= ORDER[stage.name] for r in results)


# --------------------------------------------------------------------------- the per-item step
def advance_items(store: Store, conn: Connector, campaign: Campaign) -> dict[str, int]:
    """Move every ready item one step; publish the pages that step created. Returns how many items
    moved out of each stage."""
    spec = campaign_spec(campaign)
    settings = ffv_settings(spec)
    stages = ensure_stages(store, campaign, spec)
    moved = {name: 0 for name in STAGES}
    with store.write() as s:
        store.lock_campaign(s, campaign.id)
        items = list(s.exec(select(Item).where(Item.campaign_id == campaign.id).order_by(Item.id)).all())
        blocked = blocked_workers(s, campaign.provider)
        drafts: dict[str, list[TaskDraft]] = defaultdict(list)
        for name in STAGES:
            waiting = {i.id: i for i in items if state_of(i) == name}
            if not waiting:
                continue
            ready = _ready(s, stages[name], waiting)
            if not ready:
                continue
            answers = _answers(s, [t.id for ts in ready.values() for t in ts], blocked)
            step = {"find": _after_find, "fix": _after_fix, "verify": _after_verify}[name]
            context = _verify_context(s, stages, settings, blocked) if name == "verify" else None
            for item_id, tasks in ready.items():
                item = waiting[item_id]
                if _top_up(s, campaign, stages[name], tasks, answers, getattr(settings, f"{name}_min"), context):
                    continue  # too few usable answers: its pages get more assignments first
                result, new = step(item, tasks, answers, settings, context)
                if result.get("state") == "done":
                    result["cost"] = str(item_costs(s, campaign, [item.id]).get(item.id, Decimal(0)))
                item.result = result
                s.add(item)
                drafts[_next_stage(name, result)] += new
                moved[name] += result.get("state") != name
        for name, ds in drafts.items():
            if ds:
                _add_tasks(store, s, campaign, stages[name], ds, {i.external_id: i.id for i in items})
    if any(drafts.values()):
        checkpoint("ffv.advanced")  # new tasks and pages committed, not yet published
    publish_new_pages(store, conn, campaign)
    return moved


def _next_stage(current: str, result: dict) -> str:
    return result["state"] if result["state"] in STAGES else current


def ensure_stages(store: Store, campaign: Campaign, spec: CampaignSpec) -> dict[str, Stage]:
    """The fix and verify stages exist from the first advance on (no batch until they get pages)."""
    from campaigns.engine.launch import add_stage
    from campaigns.stages.plan import StagePlan, price_stage, stage_shape

    with store.write() as s:
        have = {st.name: st for st in s.exec(select(Stage).where(Stage.campaign_id == campaign.id)).all()}
        for name in STAGES:
            if name in have:
                continue
            page_size, overlap, top = stage_shape(spec, name)
            plan = StagePlan(name=name, kind=name, tasks=[], pages=[], assignments=overlap, max_assignments=top,
                             settings=ffv_settings(spec).model_dump(mode="json"), items_per_page=page_size)
            have[name] = add_stage(s, campaign, plan, price_stage(spec, plan), {})
        return have


def _ready(s, stage: Stage, waiting: dict[int, Item]) -> dict[int, list[Task]]:
    """Items (of ``waiting``) whose tasks in ``stage`` are all on pages that are done and reviewed."""
    done = set(s.exec(select(Page.id).where(Page.stage_id == stage.id, Page.status == "done")).all())
    busy = set(s.exec(select(Assignment.page_id).where(Assignment.stage_id == stage.id,
                                                       Assignment.review.not_in(SETTLED_REVIEW))).all())
    tasks: dict[int, list[Task]] = defaultdict(list)
    for t in s.exec(select(Task).where(Task.stage_id == stage.id, Task.item_id.in_(list(waiting)),
                                       Task.golden.is_(False)).order_by(Task.id)).all():
        tasks[t.item_id].append(t)
    return {i: ts for i, ts in tasks.items() if all(t.page_id in done and t.page_id not in busy for t in ts)}


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


def _top_up(s, campaign: Campaign, stage: Stage, tasks: list[Task], answers, minimum: int,
            ctx: dict | None) -> bool:
    """Ask for more assignments on pages where a task of the item has fewer usable answers than
    ``minimum`` (Verify: not counting the patch's own writers), up to twice the stage's overlap.
    Only the intent is written (``extending``); the poll's ``overlap.finish_extensions`` carries it out
    once on the marketplace. True when the item has to wait for it."""
    cap = 2 * stage.assignments_per_page
    if campaign.provider == "mturk" and stage.assignments_per_page < 10:
        cap = min(cap, 9)  # MTurk cannot take a HIT made with fewer than 10 assignments to 10
    need: dict[int, int] = {}
    for t in (tasks[-1:] if stage.name == "find" else tasks):
        got = answers[t.id]
        if ctx is not None:
            got = [a for a in got if a[0] not in ctx["writers"][f"{t.payload['item_id']}/{t.payload['patch_id']}"]]
        if len(got) < minimum:
            need[t.page_id] = max(need.get(t.page_id, 0), minimum - len(got))
    waiting = False
    for page_id, extra in need.items():
        page = s.get(Page, page_id)
        room = cap - page.assignments
        if room > 0:
            page.assignments, page.status = page.assignments + min(extra, room), "extending"
            s.add(page)
            waiting = True
    return waiting


def _after_find(item: Item, tasks: list[Task], answers, settings: FFVSettings, _ctx) -> tuple[dict, list]:
    text = item.payload["text"]
    latest = tasks[-1]  # a re-asked text is judged on its latest round
    per_worker = [[(sp["start"], sp["end"]) for sp in value["spans"]] for _w, value in answers[latest.id]]
    threshold = settings.threshold(len(per_worker))
    patches = patches_from_spans(text, per_worker, threshold) if per_worker else []
    find = {"workers": len(per_worker), "threshold": threshold, "rounds": len(tasks),
            "below_min": len(per_worker) < settings.find_min}
    if patches:
        ps = [{"id": f"p{a}-{b}", "start": a, "end": b, "original": text[a:b]} for a, b in patches]
        fix = get_kind("fix")
        drafts = [d for p in ps for d in fix.make_tasks(
            {"id": item.external_id, "patch_id": p["id"], "start": p["start"], "end": p["end"], "text": text,
             "prompt": item.payload.get("prompt")}, settings, 0)]
        return {"state": "fix", "find": find, "patches": ps}, drafts
    if settings.no_patch == "reask" and len(tasks) <= settings.max_reasks:
        (draft,) = get_kind("find").make_tasks(item.payload, settings, 0)
        return ({"state": "find", "find": find},
                [draft.model_copy(update={"key_hint": f"find-r{len(tasks)}"})])
    return assemble(item, {"find": find, "patches": []}), []


def _after_fix(item: Item, tasks: list[Task], answers, settings: FFVSettings, _ctx) -> tuple[dict, list]:
    result = dict(item.result)
    by_patch = {t.payload["patch_id"]: t for t in tasks}
    slots = settings.fix_workers
    verify = get_kind("verify")
    drafts = []
    patches = []
    for p in result["patches"]:
        task = by_patch.get(p["id"])
        rewrites = [v["rewrite"] for _w, v in answers[task.id]] if task else []
        counts = Counter(r.strip() for r in rewrites)
        cands = candidate_slots(rewrites, p["original"], slots)
        p = {**p, "fix_answers": len(rewrites), "below_min": len(rewrites) < settings.fix_min,
             "candidates": [{"id": f"c{n + 1}", "text": c, "writers": counts[c]} for n, c in enumerate(cands)]}
        patches.append(p)
        if cands:
            drafts += verify.make_tasks(
                {"id": item.external_id, "patch_id": p["id"], "start": p["start"], "end": p["end"],
                 "text": item.payload["text"], "prompt": item.payload.get("prompt"), "candidates": cands,
                 "slots": slots}, settings, 0)
    result["patches"] = patches
    if not drafts:
        return assemble(item, result), []
    result["state"] = "verify"
    return result, drafts


def _verify_context(s, stages: dict[str, Stage], settings: FFVSettings, blocked: set[str]) -> dict[str, Any]:
    """What every Verify decision needs: who wrote candidates for which patch, and the stage's
    aggregated labels (one crowd-kit fit over the whole stage, authors' votes left out)."""
    import pandas as pd

    writers: dict[str, set[str]] = defaultdict(set)
    for worker, value in s.exec(select(Judgement.worker_id, Judgement.value).where(
            Judgement.stage_id == stages["fix"].id, Judgement.valid)).all():
        writers[f"{value['item_id']}/{value['patch_id']}"].add(worker)
    rows, excluded = [], Counter()
    for worker, value in s.exec(select(Judgement.worker_id, Judgement.value)
                                .join(Assignment, Assignment.id == Judgement.assignment_pk)
                                .where(Judgement.stage_id == stages["verify"].id, Judgement.valid,
                                       Assignment.review == "approved")).all():
        task = f"{value['item_id']}/{value['patch_id']}"
        if worker in writers[task]:
            excluded[task] += 1
        elif worker not in blocked:
            rows.append({"task": task, "worker": worker, "label": value["best"],
                         "acceptable": value.get("acceptable", [])})
    frame = pd.DataFrame(rows, columns=["task", "worker", "label", "acceptable"])
    labels = get_kind("verify").aggregate(frame, method=settings.method) if len(frame) else pd.DataFrame()
    return {"frame": frame, "excluded": excluded, "writers": writers,
            "labels": {r.task: (r.label, float(r.confidence)) for r in labels.itertuples()} if len(labels) else {}}


def _after_verify(item: Item, tasks: list[Task], answers, settings: FFVSettings, ctx) -> tuple[dict, list]:
    result = dict(item.result)
    frame = ctx["frame"]
    patches = []
    for p in result["patches"]:
        task = f"{item.external_id}/{p['id']}"
        mine = frame[frame["task"] == task]
        votes = Counter(mine["label"])
        accept = Counter(a for acc in mine["acceptable"] for a in acc)
        label, confidence = ctx["labels"].get(task, (KEEP, None))
        texts = {c["id"]: c["text"] for c in p.get("candidates", [])}
        top = max(votes.values(), default=0)
        tied = [lab for lab, n in votes.items() if n == top]
        if settings.method == "mv" and len(tied) > 1:  # a split vote changes nothing, else the
            writers = {c["id"]: c["writers"] for c in p.get("candidates", [])}  # better-supported one
            label = KEEP if KEEP in tied else max(tied, key=lambda c: (accept[c], writers.get(c, 0)))
        if label != KEEP and label not in texts:
            label = KEEP
        total = sum(votes.values())
        patches.append({**p, "votes": dict(votes), "acceptable": dict(accept), "winner": label,
                        "winner_text": texts.get(label), "confidence": confidence,
                        "agreement": round(votes[label] / total, 4) if total else None,
                        "verify_votes": total, "excluded_votes": ctx["excluded"].get(task, 0),
                        "below_min": total < settings.verify_min})
    result["patches"] = patches
    return assemble(item, result), []


def assemble(item: Item, result: dict) -> dict:
    """The item's final result: the winning fixes applied to its text."""
    text = item.payload["text"]
    patches = [{**p, "winner": p.get("winner", KEEP), "winner_text": p.get("winner_text")}
               for p in result.get("patches", [])]
    fixes = [(p["start"], p["end"], p["winner_text"]) for p in patches if p["winner"] != KEEP]
    revised = apply_fixes(text, fixes)
    return {**result, "state": "done", "patches": patches, "original": text, "revised": revised,
            "changed": revised != text, "fixes": len(fixes)}


# --------------------------------------------------------------------------- tasks, pages, publishing
def _add_tasks(store: Store, s, campaign: Campaign, stage: Stage, drafts: list[TaskDraft],
               item_ids: dict[str, int]) -> None:
    """Write drafts as tasks and put the new ones on pages (deterministic keys, insert-ignore)."""
    rows = [dict(stage_id=stage.id, item_id=item_ids.get(d.item_id), key_hint=d.key, payload=d.payload,
                 key=keys.short_id(campaign.name, stage.name, d.key, prefix="k", length=11), golden=False)
            for d in drafts]
    store.insert_ignore(s, Task, rows, ["stage_id", "key"])
    fresh = s.exec(select(Task).where(Task.stage_id == stage.id, Task.key.in_([r["key"] for r in rows]),
                                      Task.page_id.is_(None)).order_by(Task.key)).all()
    spec = campaign_spec(campaign)
    from campaigns.stages.plan import stage_shape

    page_size = stage_shape(spec, stage.name)[0]
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


def publish_new_pages(store: Store, conn: Connector, campaign: Campaign) -> int:
    """Publish every FFV page without a publication, then make each stage's fetch cursor follow
    the pages it has not finished (a cursor made before they existed would not know them)."""
    from campaigns.engine.launch import follow_pages, publish_stage

    published = 0
    with store.session() as s:
        stages = s.exec(select(Stage).where(Stage.campaign_id == campaign.id, Stage.status != "done")).all()
    for stage in stages:
        with store.session() as s:
            todo = s.exec(select(func.count()).select_from(Page).outerjoin(
                Publication, Publication.page_id == Page.id).where(Page.stage_id == stage.id,
                                                                  Publication.id.is_(None))).one()
        if todo:
            published += publish_stage(store, conn, campaign.id, stage_name=stage.name).published
        follow_pages(store, conn, stage)
    return published


# --------------------------------------------------------------------------- cost
def item_costs(s, campaign: Campaign, item_ids: list[int] | None = None) -> dict[int, Decimal]:
    """Money booked per item: each assignment's ledger entries (reward, fee, bonus) shared evenly
    among the tasks on its page."""
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
