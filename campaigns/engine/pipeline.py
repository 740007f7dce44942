"""The poll as a pipeline, as toloka-kit's streaming package has it: a cursor, steps, a runner.

- the cursor (``engine.cursor``) says what is new for a stage, and is kept in the store;
- the steps (``engine.steps``), each ``run(r: StageRun)`` with its own crash point, act on it in
  the order below: keep it, review it, judge the workers, pay, then ask for more work where
  it is needed, and mark what is done;
- the runner (``run_stage``) takes them in turn for one stage, under the stage's lease (held by
  ``engine.poll``).

Every step is idempotent on its own, so a poll killed between any two steps and run again ends
in the state of one never interrupted. Adding a step is one module in ``steps/`` and one line here.
"""

from __future__ import annotations

from campaigns.engine import cursor
from campaigns.engine.stage_run import Progress, StagePoll, StageRun
from campaigns.engine.steps import (
    close_probes,
    extensions,
    follow_ups,
    ingest,
    pages,
    pay,
    probes,
    quality,
    review,
    waves,
)
from campaigns.store.checkpoints import checkpoint
from campaigns.store.database import Store
from campaigns.store.models import Campaign, Stage
from connectors.base import Connector

STEPS = (ingest, review, quality, pay, extensions, probes, follow_ups, close_probes, waves, pages)


def run_stage(store: Store, conn: Connector, campaign: Campaign, stage: Stage, report: StagePoll,
              progress: Progress | None = None) -> None:
    fetched = cursor.fetch_new(store, conn, stage)
    checkpoint("poll.fetched")
    r = StageRun(store=store, conn=conn, campaign=campaign, stage=stage, report=report, fetched=fetched,
                 progress=progress)
    for step in STEPS:
        step.run(r)
        checkpoint(step.CHECKPOINT)
    with store.session() as s:
        report.status = s.get(Stage, stage.id).status
