"""``crowd launch``: plan a campaign's first stage, price it, check budget and balance, publish.

Planning happens in memory first; nothing is written until every check passed. Re-running
``launch`` on the same spec resumes: the campaign and its pages already exist, and only pages
without a publication go out (each with its idempotency key, so the marketplace never makes a
second HIT or task for a page whose publication record was lost in a crash).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from sqlmodel import func, select

from campaigns.engine.replan import discard_plan, untouched
from campaigns.errors import CrowdError
from campaigns.money.budget import guard_publish
from campaigns.quality.pools import screening_test
from campaigns.spec.loading import load_items
from campaigns.spec.model import CampaignSpec
from campaigns.spec.stored import campaign_spec
from campaigns.stages.plan import StagePlan, batch_spec_for, first_stage, follow_up_room, neutral_page, price_stage
from campaigns.store import keys
from campaigns.store.checkpoints import checkpoint
from campaigns.store.connect import connector_for
from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, Item, Page, PollCursor, Publication, Stage, Task
from connectors.base import BatchRef, Connector, ConnectorError
from payouts.budget import check_budget
from payouts.pricing import forecast

Progress = Callable[[str, int, int], None]


@dataclass
class LaunchReport:
    campaign_id: int
    name: str
    stage: str
    pages: int
    published: int
    already_published: int
    reward_per_page: Decimal
    forecast_total: Decimal
    resumed: bool
    api_calls: dict[str, int] = field(default_factory=dict)


def spec_fingerprint(spec_text: str, items_text: str) -> str:
    return hashlib.sha256((spec_text + "\x00" + items_text).encode()).hexdigest()[:16]


def check_inputs(spec: CampaignSpec) -> list[dict]:
    """Read and validate every file the spec names (items, golden items, screening test) and the
    golden settings that depend on the items; returns the items. The CLI calls this before it
    opens the store, so a bad input line leaves no database behind."""
    stage = first_stage(spec)
    items = load_items(spec.path(spec.items), validate=stage.validate_item)
    if not items:
        raise CrowdError(f"{spec.path(spec.items)}: no items: the file has no JSON lines")
    stage.check_golden(items)
    screening_test(spec)
    return items


def launch(spec: CampaignSpec, store: Store, *, spec_text: str, endpoint: str | None = None,
           connector: Connector | None = None, progress: Progress | None = None) -> LaunchReport:
    items_path = spec.path(spec.items)
    plan_items = check_inputs(spec)
    fingerprint = spec_fingerprint(spec_text, items_path.read_text(encoding="utf-8"))

    with store.session() as s:
        existing = s.exec(select(Campaign).where(Campaign.name == spec.name)).first()
    if existing is not None and existing.spec_hash != fingerprint:
        if not untouched(store, existing.id):
            raise CrowdError(f"campaign {spec.name!r} already exists with a different spec or items, and "
                             "some of its work is on the marketplace; give the campaign a new name")
        discard_plan(store, existing.id)  # nothing of it reached a worker: plan the corrected spec
        existing = None
    conn = connector or connector_for(spec.provider, spec.environment, endpoint or spec.endpoint_url)

    if existing is None:
        stage_plan = first_stage(spec).plan(plan_items, random.Random(spec.seed))
        reward = price_stage(spec, stage_plan)
        cost = forecast(len(stage_plan.pages), stage_plan.assignments, reward, spec.provider)
        if spec.budget is not None:
            verdict = check_budget(cap=spec.budget.cap, spent=Decimal(0), committed=Decimal(0),
                                   proposed=cost.total)
            if not verdict.allowed:
                raise CrowdError(f"launch refused: the forecast exceeds the budget: {verdict.reason}")
        balance = conn.balance()
        if balance < cost.total:
            raise CrowdError(f"launch refused: the {spec.provider} account balance {balance} cannot cover "
                             f"the forecast {cost.total}")
        campaign_id = _write_plan(store, spec, spec_text, fingerprint, plan_items, stage_plan, reward)
        resumed = False
    else:
        campaign_id = existing.id
        resumed = True

    try:
        report = publish_stage(store, conn, campaign_id, stage_name=first_stage(spec).name, progress=progress,
                               until=spec.wave if spec.kind != "ffv" else None)
    except ConnectorError as exc:
        # The marketplace refused the first pages outright: nothing is out, so keep nothing either.
        if not exc.retryable and not resumed and untouched(store, campaign_id):
            discard_plan(store, campaign_id)
        raise
    report.resumed = resumed
    return report


def _mark(store: Store, pages: list[Page], status: str) -> None:
    with store.write() as s:
        for p in pages:
            row = s.get(Page, p.id)
            row.status = status
            s.add(row)


def _record(store: Store, campaign: Campaign, stage: Stage, pages: list[Page], by_page: dict) -> None:
    """Publication rows for pages now on the marketplace (``by_page``: page key -> PublishedPage)."""
    with store.write() as s:
        rows = [dict(page_id=p.id, provider=campaign.provider, provider_ref=by_page[p.page_key].provider_ref,
                     idempotency_key=keys.page_key(campaign.name, stage.name, p.page_key)) for p in pages]
        store.insert_ignore(s, Publication, rows, ["page_id"])
        for p in pages:
            row = s.get(Page, p.id)
            row.status = "published"
            s.add(row)


def _write_plan(store: Store, spec: CampaignSpec, spec_text: str, fingerprint: str, items: list[dict],
                plan: StagePlan, reward: Decimal) -> int:
    with store.write() as s:
        campaign = Campaign(name=spec.name, provider=spec.provider, environment=spec.environment,
                            endpoint_url=spec.endpoint_url, kind=spec.kind, spec_yaml=spec_text,
                            spec_hash=fingerprint, budget_cap=spec.budget.cap if spec.budget else None)
        s.add(campaign)
        s.flush()
        item_rows = {it["id"]: Item(campaign_id=campaign.id, external_id=str(it["id"]), payload=it)
                     for it in items}
        s.add_all(item_rows.values())
        s.flush()
        add_stage(s, campaign, plan, reward, {k: v.id for k, v in item_rows.items()})
        return campaign.id


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


def publish_stage(store: Store, conn: Connector, campaign_id: int, *, stage_name: str,
                  progress: Progress | None = None, chunk: int = 25, until: int | None = None,
                  page_ids: list[int] | None = None) -> LaunchReport:
    """Create the batch if needed and publish every planned page that has no publication yet;
    with ``until``, only as many (in page order) as bring the stage's published planned pages to
    ``until``. With ``page_ids``, those pages instead (adaptive overlap's follow-up pages)."""
    with store.session() as s:
        campaign = s.get(Campaign, campaign_id)
        stage = s.exec(select(Stage).where(Stage.campaign_id == campaign_id, Stage.name == stage_name)).one()
    spec = batch_spec_for(campaign, stage, conn, creating=stage.batch_ref is None)
    with store.session() as s:
        pages = s.exec(select(Page).where(Page.stage_id == stage.id).order_by(Page.id)).all()
        pages = [p for p in pages if p.id in page_ids] if page_ids is not None else [p for p in pages
                                                                                     if not p.follow_up]
        on_market = set(s.exec(select(Publication.page_id).join(Page).where(Page.stage_id == stage.id)).all())
        published_ids = {p.id for p in pages if p.id in on_market}
        todo = [p for p in pages if p.id not in published_ids]
        if until is not None:
            todo = todo[:max(0, until - len(published_ids))]
        task_rows = {t.key: t for t in s.exec(select(Task).where(Task.stage_id == stage.id)).all()}
        batch_ref = stage.batch_ref
    if batch_ref is None:
        ref = conn.create_batch(spec)
        checkpoint("launch.batch_created")
        with store.write() as s:
            st = s.get(Stage, stage.id)
            st.batch_ref = ref.model_dump()
            st.status = "open"
            s.add(st)
        batch_ref = ref.model_dump()
    ref = BatchRef.model_validate(batch_ref)

    def neutral(group: list[Page]) -> list:
        return [neutral_page(campaign, stage, p, [task_rows[k] for k in p.task_keys]) for p in group]

    # Pages marked ``sending`` were sent by an earlier run that died before recording them. The
    # marketplace's idempotency token may have expired since (MTurk: 24 h), so ask what it holds.
    interrupted = [p for p in todo if p.status == "sending"]
    if interrupted:
        found = {pp.page_id: pp for pp in conn.published(ref, neutral(interrupted))}
        held = [p for p in interrupted if p.page_key in found]
        _record(store, campaign, stage, held, found)
        todo = [p for p in todo if p not in held]
        published_ids |= {p.id for p in held}
    done = 0
    for start in range(0, len(todo), chunk):
        group = todo[start:start + chunk]
        guard_publish(store, campaign, stage, group)
        _mark(store, group, "sending")
        try:
            published = conn.publish(ref, spec, neutral(group))
        except ConnectorError as exc:
            if exc.retryable:
                raise  # stays `sending`: the next run asks the marketplace what it holds
            # Refused: record what did get out, and the rest is only planned again.
            found = {pp.page_id: pp for pp in conn.published(ref, neutral(group))}
            _record(store, campaign, stage, [p for p in group if p.page_key in found], found)
            _mark(store, [p for p in group if p.page_key not in found], "planned")
            raise
        checkpoint("launch.published_chunk")
        _record(store, campaign, stage, group, {pp.page_id: pp for pp in published})
        done += len(group)
        if progress:
            progress("publish", done, len(todo))
    return LaunchReport(campaign_id=campaign_id, name=campaign.name, stage=stage.name, pages=len(pages),
                        published=len(todo), already_published=len(published_ids),
                        reward_per_page=stage.reward, forecast_total=stage_forecast(campaign, stage, len(pages)),
                        resumed=False, api_calls=dict(getattr(conn, "calls", {})))


def stage_forecast(campaign: Campaign, stage: Stage, pages: int) -> Decimal:
    """What a stage of ``pages`` planned pages costs at most: every page at its minimum overlap,
    and every follow-up page adaptive overlap may add."""
    extra = follow_up_room(campaign_spec(campaign), pages, stage.assignments_per_page,
                           stage.max_assignments_per_page)
    cost = forecast(pages, stage.assignments_per_page, stage.reward, campaign.provider)
    return (cost + forecast(extra, 1, stage.reward, campaign.provider)).total


def follow_pages(store: Store, conn: Connector, stage: Stage) -> None:
    """Make the stage's fetch cursor follow every page not yet done: a cursor made before a page
    was published would not know it."""
    watch = getattr(conn, "watch", None)
    if watch is None:
        return
    with store.write() as s:
        row = s.exec(select(PollCursor).where(PollCursor.stage_id == stage.id)).first()
        if row is None or row.cursor is None:
            return  # a first fetch discovers every page of the batch
        refs = s.exec(select(Publication.provider_ref).join(Page, Page.id == Publication.page_id)
                      .where(Page.stage_id == stage.id, Page.status != "done")).all()
        cursor = watch(row.cursor, sorted(refs))
        if cursor != row.cursor:
            row.cursor = cursor
            s.add(row)


WAVE_READY = 0.8  # share of published pages with their minimum answers before the next wave


def release_wave(store: Store, conn: Connector, campaign: Campaign, stage: Stage) -> int:
    """With ``wave`` in the spec, publish the next wave of pages once most published ones have
    the stage's minimum answers (its own overlap, which a ``stages:`` entry may set); returns how
    many pages were published."""
    spec = campaign_spec(campaign)
    if spec.wave is None or stage.kind in ("find", "fix", "verify"):
        return 0
    with store.session() as s:
        published = s.exec(select(Publication.page_id).join(Page).where(Page.stage_id == stage.id,
                                                                         Page.follow_up.is_(False))).all()
        total = s.exec(select(func.count()).select_from(Page).where(Page.stage_id == stage.id,
                                                                    Page.follow_up.is_(False))).one()
        answered = dict(s.exec(select(Assignment.page_id, func.count()).where(Assignment.stage_id == stage.id)
                               .group_by(Assignment.page_id)).all())
    if len(published) >= total:
        return 0
    ready = sum(answered.get(p, 0) >= stage.assignments_per_page for p in published)
    if ready < WAVE_READY * len(published):
        return 0
    report = publish_stage(store, conn, campaign.id, stage_name=stage.name, until=len(published) + spec.wave)
    follow_pages(store, conn, stage)
    return report.published
