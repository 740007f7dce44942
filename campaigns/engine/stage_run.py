"""What one poll of one stage carries from step to step, and what it reports."""

from __future__ import annotations

from dataclasses import dataclass, field

from campaigns.stages.publish import Progress
from campaigns.store.database import Store
from campaigns.store.models import Campaign, Stage
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


@dataclass
class StageRun:
    """One stage's poll: the parts every step reads, what the cursor fetched, and the report the
    steps fill in. ``reopened`` holds the pages the extensions step gave more assignments, which
    the marketplace may still list as finished in this fetch."""

    store: Store
    conn: Connector
    campaign: Campaign
    stage: Stage
    report: StagePoll
    fetched: FetchResult
    progress: Progress | None = None
    reopened: list[str] = field(default_factory=list)
