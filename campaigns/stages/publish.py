"""Publishing a stage's pages, and the fetch cursor following them.

Every page is marked ``sending`` before its chunk goes out and gets its ``Publication`` row after,
each page with its idempotency key, so a crash between the two is resolved by asking the
marketplace what it holds (``Connector.published``) instead of publishing again: MTurk's token
lasts 24 h, a resumed run may come later. The budget guard runs before every chunk. Waves
(``wave:``) publish the first stage a part at a time, once most published pages are answered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from sqlmodel import func, select

from campaigns.money.budget import guard_publish
from campaigns.spec.stored import campaign_spec
from campaigns.stages.pages import batch_spec_for, neutral_page
from campaigns.stages.plan import follow_up_room, graph_of
from campaigns.store import keys
from campaigns.store.checkpoints import checkpoint
from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, Page, PollCursor, Publication, Stage, Task
from connectors.base import BatchRef, Connector, ConnectorError
from payouts.pricing import forecast

Progress = Callable[[str, int, int], None]


@dataclass
class PublishReport:
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


def publish_stage(store: Store, conn: Connector, campaign_id: int, *, stage_name: str,
                  progress: Progress | None = None, chunk: int | None = None, until: int | None = None,
                  page_ids: list[int] | None = None) -> PublishReport:
    """Create the batch if needed and publish every planned page that has no publication yet;
    with ``until``, only as many (in page order) as bring the stage's published planned pages to
    ``until``. With ``page_ids``, those pages instead (adaptive overlap's follow-up pages).
    ``chunk``: pages per ``publish`` call, by default the connector's ``publish_chunk`` (enough to
    keep its threads busy, or one Toloka operation) else 25."""
    chunk = chunk or getattr(conn, "publish_chunk", 25)
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
    return PublishReport(campaign_id=campaign_id, name=campaign.name, stage=stage.name, pages=len(pages),
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
    if spec.wave is None or not graph_of(spec).waves:
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


def publish_new_pages(store: Store, conn: Connector, campaign: Campaign) -> int:
    """Publish every page of the campaign's open stages without a publication (pages a per-item
    stage graph added), then make each stage's fetch cursor follow the pages it has not finished
    (a cursor made before they existed would not know them)."""
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
