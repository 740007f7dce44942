"""The poll as a pipeline, as toloka-kit's streaming package has it: a cursor, steps, a runner.

- the cursor (``engine.cursor``) says what is new for a stage, and is kept in the store;
- the steps (``engine.steps``), each ``run(r: StageRun)`` with its own crash point, act on it in
  the order below: keep it, review it, judge the workers, pay, then ask for more work where
  it is needed, and mark what is done;
- the runner (``run_stage``) takes them in turn for one shard of a stage (``stages.shards``), under
  the shard's lease (held by ``engine.poll``). What a shard's own pages need (``SHARD_STEPS``: keep
  their answers, review them, mark them done) runs for every shard; the steps that read or change the
  whole stage or campaign run once per stage poll, with shard 0, whose lease is the stage's.

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
from campaigns.store.shard import WHOLE, Shard
from connectors.base import Connector

STEPS = (ingest, review, quality, pay, extensions, probes, follow_ups, close_probes, waves, pages)
SHARD_STEPS = (ingest, review, pages)


def run_stage(store: Store, conn: Connector, campaign: Campaign, stage: Stage, report: StagePoll,
              progress: Progress | None = None, shard: Shard = WHOLE,
              opened: dict[str, cursor.OpenPage] | None = None) -> None:
    """``opened``: the shard's open pages as read before its fetch's listing (read here if not given)."""
    opened = cursor.open_pages(store, stage, shard) if opened is None else opened
    fetched = cursor.fetch_new(store, conn, stage, shard, opened)
    checkpoint("poll.fetched")
    r = StageRun(store=store, conn=conn, campaign=campaign, stage=stage, report=report, fetched=fetched,
                 progress=progress, shard=shard, open_pages=opened)
    for step in STEPS:
        if shard.stage_wide or step in SHARD_STEPS:
            step.run(r)
            checkpoint(step.CHECKPOINT)
    with store.session() as s:
        report.status = s.get(Stage, stage.id).status
