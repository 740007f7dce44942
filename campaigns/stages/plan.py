"""Stages: planning a stage's tasks and pages from a task kind, turning stored tasks into
neutral pages for a connector, judging answers, and moving a campaign on when a stage is done.

One mechanism for every task kind: the kind module (``decomposition``) supplies tasks,
widgets, parsing, grading and aggregation; this module only wires them to the store.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlmodel import func, select

from campaigns.errors import CrowdError
from campaigns.quality.pools import lane_pools, requirements_for
from campaigns.spec.loading import load_items
from campaigns.spec.model import CampaignSpec
from campaigns.spec.stored import campaign_spec
from campaigns.store import keys
from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, Page, Publication, Stage, Task
from connectors.base import BatchSpec, Connector, PageItem, PoolRequirement, PoolSpec
from connectors.base import Page as NeutralPage
from decomposition.errors import AnswerError, InputError
from decomposition.golden import (
    GOLDEN_KEYS,
    check_golden_item,
    golden_count,
    golden_tasks,
    response_sources,
    synthetic_pairwise_golden,
    weaker_source_golden,
    weaker_source_pairs,
)
from decomposition.kinds import TaskDraft, get_kind
from decomposition.pages import build_pages
from payouts.pricing import reward_per_page, validate_reward


@dataclass
class StagePlan:
    name: str
    kind: str
    tasks: list[TaskDraft]
    pages: list[list[str]]  # task keys (``TaskDraft.key``) per page
    assignments: int
    max_assignments: int
    settings: dict = field(default_factory=dict)
    items_per_page: int = 1


@dataclass
class StageDef:
    name: str
    kind: str
    spec: CampaignSpec

    @property
    def kind_impl(self):
        return get_kind(self.kind)

    def validate_item(self, item: dict) -> None:
        """For ``load_items``: an item the kind cannot design tasks for is refused with its line."""
        self.kind_impl.make_tasks(item, self.spec.settings, 0)

    def validate_golden_item(self, item: dict) -> None:
        """For ``load_items``: a golden item without an answer, a subjective preference, or one the
        kind cannot design tasks for is refused with its line."""
        check_golden_item(self.kind_impl, item)
        self.validate_item({k: v for k, v in item.items() if k not in GOLDEN_KEYS})

    def golden_items(self) -> list[dict]:
        g = self.spec.golden
        return load_items(self.spec.path(g.items), validate=self.validate_golden_item) if g.items else []

    def check_golden(self, items: list[dict]) -> None:
        """Golden inputs the plan would fail on, refused before anything is written."""
        self.golden_items()
        source = self.spec.golden.weaker_source
        if source is not None and self.kind != "pairwise":
            raise CrowdError(f"golden.weaker_source: only pairwise campaigns have weaker-source golden tasks, "
                             f"not {self.spec.kind}")
        if source is not None and not weaker_source_pairs(items, source):
            known = ", ".join(response_sources(items)) or "none"
            raise CrowdError(f"golden.weaker_source: no prompt in {self.spec.items} has a response from source "
                             f"{source!r} and one from another source (sources there: {known})")

    def plan(self, items: list[dict], rng: random.Random) -> StagePlan:
        kind = self.kind_impl
        settings = kind.settings(self.spec.settings)
        real = [d for item in items for d in kind.make_tasks(item, settings, rng)]
        g = self.spec.golden
        golden: list[TaskDraft] = golden_tasks(kind, self.golden_items(), settings, rng) if g.items else []
        if g.synthetic and self.kind == "pairwise":
            modes = None if g.synthetic is True else g.synthetic
            try:
                golden += synthetic_pairwise_golden(items, golden_count(len(items)), settings, rng, modes=modes)
            except InputError as exc:
                raise CrowdError(f"{self.spec.path(self.spec.items)}: golden.synthetic: {exc}") from None
        if g.weaker_source is not None and self.kind == "pairwise":
            golden += weaker_source_golden(items, g.weaker_source, golden_count(len(items)), settings, rng)
        by_key = {d.key: d for d in real + golden}
        if len(by_key) != len(real) + len(golden):
            raise CrowdError("two tasks of this stage have the same key; item ids must be unique")
        page_size, overlap, top = stage_shape(self.spec, self.name)
        pages = build_pages([d.key for d in real], [d.key for d in golden], page_size,
                            self.spec.golden.rate if golden else 0.0, rng)
        used = {k for p in pages for k in p}
        return StagePlan(name=self.name, kind=self.kind, tasks=[d for k, d in by_key.items() if k in used],
                         pages=pages, assignments=overlap, max_assignments=top,
                         settings=settings.model_dump(mode="json"), items_per_page=page_size)


FFV_STAGES = ("find", "fix", "verify")
FFV_TITLES = {"find": ("Find the weak parts of a text", "Read a short text and mark the parts that need fixing."),
              "fix": ("Fix one marked part of a text", "Rewrite one marked part of a short text."),
              "verify": ("Pick the best fix of a text", "Compare rewrites of one part of a text and pick the best.")}


def stage_shape(spec: CampaignSpec, name: str) -> tuple[int, int, int]:
    """(page size, assignments per page, maximum assignments per page) of one stage: the stage's
    own ``stages:`` override, else (Find-Fix-Verify) the kind's workers per stage, else the spec's."""
    o = spec.stages.get(name)
    page_size = o.page_size if o and o.page_size else spec.page_size
    if name in FFV_STAGES and spec.kind == "ffv":
        workers = o.overlap if o and o.overlap else getattr(get_kind("find").settings(spec.settings),
                                                              f"{name}_workers")
        return page_size, workers, workers
    overlap = o.overlap if o and o.overlap else spec.overlap.min
    return page_size, overlap, max(overlap, spec.overlap.max or overlap)


def follow_up_room(spec: CampaignSpec, pages: int, minimum: int, maximum: int) -> int:
    """The most follow-up pages (one assignment each) adaptive overlap may add to a stage of
    ``pages`` planned pages: ``extra_share`` of the room between minimum and maximum overlap."""
    return int(spec.overlap.extra_share * pages * (maximum - minimum)) if maximum > minimum else 0


def first_stage(spec: CampaignSpec) -> StageDef:
    return StageDef(name="compare" if spec.kind in ("pairwise", "listwise") else "find",
                    kind=spec.kind if spec.kind != "ffv" else "find", spec=spec)


def price_stage(spec: CampaignSpec, plan: StagePlan) -> Decimal:
    p = spec.stages.get(plan.name).pricing if plan.name in spec.stages and spec.stages[plan.name].pricing \
        else spec.pricing
    if p.reward is not None:
        return validate_reward(p.reward, spec.provider)
    return reward_per_page(plan.items_per_page, p.seconds_per_item, p.hourly_wage, spec.provider)


def stage_kind(stage: Stage):
    return get_kind(stage.kind)


def neutral_page(campaign: Campaign, stage: Stage, page: Page, tasks: list[Task]) -> NeutralPage:
    kind = stage_kind(stage)
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
    title, description = spec.title, spec.description
    if spec.kind == "ffv" and stage.name in FFV_TITLES:
        title, description = FFV_TITLES[stage.name]
    lanes = {name: [PoolRequirement(pool=conn.ensure_pool(PoolSpec(name=pool)))]
             for name, pool in lane_pools(campaign, stage).items()} if creating else {}
    return BatchSpec(batch_id=f"{campaign.name}/{stage.name}", idempotency_key=stage.batch_idempotency_key,
                     stage=stage.name, kind=stage.kind, title=title, description=description,
                     instructions=(overrides.instructions if overrides and overrides.instructions else
                                   spec.instructions),
                     keywords=spec.keywords, reward=stage.reward, assignments_per_page=stage.assignments_per_page,
                     assignment_duration_s=spec.assignment_duration_s, lifetime_s=spec.lifetime_s,
                     auto_approval_delay_s=spec.auto_approval_delay_s, requirements=requirements,
                     locales=spec.locales, golden_per_page=golden_per_page,
                     real_per_page=max(1, page_size - golden_per_page), lanes=lanes)


def judge(kind, task: Task, answer: dict | None, parse_error: str | None) -> tuple[Any, str | None, bool | None]:
    """(value, error, golden_correct) for one task's answer within an assignment."""
    if parse_error:
        return None, parse_error, (False if task.golden else None)
    if answer is None:
        return None, "no answer for this item", (False if task.golden else None)
    try:
        value = kind.parse(task.payload, answer)
    except AnswerError as exc:
        return None, str(exc), (False if task.golden else None)
    correct = kind.grade(task.payload, task.golden_answer, value) if task.golden else None
    return value.model_dump(mode="json"), None, correct


def page_refs(store: Store, stage_id: int, *, open_only: bool = False) -> list[str]:
    """The marketplace refs of the stage's own publications (only pages not yet done, with
    ``open_only``): the one list a campaign reads, closes and reconciles, so it never touches
    another campaign's work that shares its HIT type."""
    with store.session() as s:
        q = select(Publication.provider_ref).join(Page, Page.id == Publication.page_id).where(Page.stage_id == stage_id)
        if open_only:
            q = q.where(Page.status != "done")
        return sorted(s.exec(q).all())


def refresh_pages(store: Store, stage_id: int, finished_refs: list[str] | None = None) -> tuple[int, int]:
    """Mark pages done whose every assignment came back, or that the marketplace reports as
    having no work left (expired with fewer answers); returns (done, total)."""
    with store.write() as s:
        finished = set(s.exec(select(Publication.page_id).where(
            Publication.provider_ref.in_(finished_refs or []))).all()) if finished_refs else set()
        counts = dict(s.exec(select(Assignment.page_id, func.count()).where(Assignment.stage_id == stage_id)
                             .group_by(Assignment.page_id)).all())
        pages = s.exec(select(Page).where(Page.stage_id == stage_id)).all()
        done = 0
        for p in pages:
            if p.status != "done" and (counts.get(p.id, 0) >= p.assignments or p.id in finished):
                p.status = "done"
                s.add(p)
            done += p.status == "done"
        return done, len(pages)


def advance(store: Store, conn: Connector, campaign_id: int) -> None:
    """Finish stages whose pages are all done and reviewed and that no item can still add work to;
    finish the campaign when none is left. Find-Fix-Verify items first take their own next step
    (``campaigns.engine.advance``), which may give later stages new pages."""
    from campaigns.engine.finish import finalize_stage
    from connectors.base import BatchRef

    with store.session() as s:
        campaign = s.get(Campaign, campaign_id)
    can_grow = None
    if campaign.kind == "ffv":
        from campaigns.engine import advance as ffv

        ffv.advance_items(store, conn, campaign)
        can_grow = ffv.can_grow
    with store.session() as s:
        stages = s.exec(select(Stage).where(Stage.campaign_id == campaign_id).order_by(Stage.id)).all()
    for stage in stages:
        if stage.status not in ("open", "planned"):
            continue
        with store.session() as s:
            open_pages = s.exec(select(func.count()).select_from(Page).where(
                Page.stage_id == stage.id, Page.status != "done")).one()
            unreviewed = s.exec(select(func.count()).select_from(Assignment).where(
                Assignment.stage_id == stage.id, Assignment.review.in_(["pending", "approving", "rejecting"]))).one()
        if open_pages or unreviewed or (stage.status == "planned" and can_grow is None):
            continue
        if can_grow is not None and can_grow(store, campaign, stage):
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
