"""What one poll of one shard of a stage carries from step to step, and what it reports."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from campaigns.engine.cursor import OpenPage
from campaigns.stages.publish import Progress
from campaigns.store.database import Store
from campaigns.store.models import Campaign, Stage
from campaigns.store.shard import WHOLE, Shard
from connectors.base import Connector, FetchResult


@dataclass
class StagePoll:
    campaign: str
    stage: str
    fetched: int = 0
    new: int = 0
    approved: int = 0
    rejected: int = 0
    blocked: int = 0
    bonuses: int = 0
    extended: int = 0  # pages given more assignments (a per-item stage graph's top-ups)
    follow_ups: int = 0  # follow-up pages published for unsettled items (adaptive overlap)
    probes: int = 0  # golden-only probe pages published for suspects (adaptive.probation)
    pages_done: int = 0
    pages: int = 0
    status: str = "open"
    skipped: str | None = None
    shards: int = 0  # shards of the stage this poller polled

    def add(self, run: StagePoll) -> None:
        """Count one shard's run in: its counts add up; the page counts come from the stage-wide run."""
        for f in fields(self):
            if f.type == "int" and f.name not in ("pages_done", "pages", "shards"):
                setattr(self, f.name, getattr(self, f.name) + getattr(run, f.name))
        if run.pages:
            self.pages_done, self.pages = run.pages_done, run.pages
        self.shards += 1


@dataclass
class StageRun:
    """One shard's poll (the whole stage's, for a stage of one shard): the parts every step reads,
    what the cursor fetched, the shard's open pages as they were before that fetch, and the report
    the steps fill in. ``reopened`` holds the pages the extensions step gave more assignments."""

    store: Store
    conn: Connector
    campaign: Campaign
    stage: Stage
    report: StagePoll
    fetched: FetchResult
    progress: Progress | None = None
    reopened: list[str] = field(default_factory=list)
    shard: Shard = WHOLE
    open_pages: dict[str, OpenPage] = field(default_factory=dict)
