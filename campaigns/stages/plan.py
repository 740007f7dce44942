"""Planning a stage: its tasks from the stage graph's task kind, its pages, its shape and price.

One mechanism for every kind: the campaign's stage graph (``decomposition.graph``) names the
stages and their task kinds; the kind designs tasks, golden tasks and widgets. This module only
turns the spec and the items into a ``StagePlan`` that ``stages.pages`` writes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal

from campaigns.errors import CrowdError
from campaigns.spec.loading import load_items
from campaigns.spec.model import CampaignSpec
from decomposition.errors import InputError
from decomposition.golden import (
    GOLDEN_KEYS,
    MADE_GOLDEN_KINDS,
    check_golden_item,
    golden_tasks,
    made_golden,
    response_sources,
    weaker_source_pairs,
)
from decomposition.graph import StageGraph, StageNode, get_graph
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
        if source is not None and self.kind not in MADE_GOLDEN_KINDS:
            raise CrowdError(f"golden.weaker_source: only {', '.join(sorted(MADE_GOLDEN_KINDS))} campaigns have "
                             f"weaker-source golden tasks, not {self.spec.kind}")
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
        try:
            golden += made_golden(self.kind, items, synthetic=g.synthetic, weaker_source=g.weaker_source,
                                  settings=settings, rng=rng)
        except InputError as exc:
            raise CrowdError(f"{self.spec.path(self.spec.items)}: {exc}") from None
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


def graph_of(spec: CampaignSpec) -> StageGraph:
    return get_graph(spec.kind)


def node_of(spec: CampaignSpec, name: str) -> StageNode:
    return graph_of(spec).node(name)


def stage_shape(spec: CampaignSpec, name: str) -> tuple[int, int, int]:
    """(page size, assignments per page, maximum assignments per page) of one stage: the stage's
    own ``stages:`` override, else the overlap the stage graph takes from the kind's settings
    (both fixed), else the spec's ``overlap``."""
    o = spec.stages.get(name)
    page_size = o.page_size if o and o.page_size else spec.page_size
    graph = graph_of(spec)
    fixed = graph.overlap(graph.node(name), graph.settings(spec.settings))
    if fixed is not None:
        workers = o.overlap if o and o.overlap else fixed
        return page_size, workers, workers
    overlap = o.overlap if o and o.overlap else spec.overlap.min
    return page_size, overlap, max(overlap, spec.overlap.max or overlap)


def follow_up_room(spec: CampaignSpec, pages: int, minimum: int, maximum: int) -> int:
    """The most follow-up pages (one assignment each) adaptive overlap may add to a stage of
    ``pages`` planned pages: ``extra_share`` of the room between minimum and maximum overlap."""
    return int(spec.overlap.extra_share * pages * (maximum - minimum)) if maximum > minimum else 0


def first_stage(spec: CampaignSpec) -> StageDef:
    node = graph_of(spec).first
    return StageDef(name=node.name, kind=node.kind, spec=spec)


def _pricing(spec: CampaignSpec, name: str):
    return spec.stages[name].pricing if name in spec.stages and spec.stages[name].pricing else spec.pricing


def page_seconds_estimate(spec: CampaignSpec, name: str) -> int | None:
    """How long a page of the stage should take (``seconds_per_item`` x page size), if the spec says."""
    p = _pricing(spec, name)
    return None if p.seconds_per_item is None else round(p.seconds_per_item * stage_shape(spec, name)[0])


def price_stage(spec: CampaignSpec, plan: StagePlan) -> Decimal:
    p = _pricing(spec, plan.name)
    if p.reward is not None:
        return validate_reward(p.reward, spec.provider)
    return reward_per_page(plan.items_per_page, p.seconds_per_item, p.hourly_wage, spec.provider)


def empty_plan(spec: CampaignSpec, name: str) -> StagePlan:
    """A later stage of the graph before any item reached it: its shape and settings, no tasks."""
    node = node_of(spec, name)
    page_size, overlap, top = stage_shape(spec, name)
    return StagePlan(name=name, kind=node.kind, tasks=[], pages=[], assignments=overlap, max_assignments=top,
                     settings=graph_of(spec).settings(spec.settings).model_dump(mode="json"),
                     items_per_page=page_size)
