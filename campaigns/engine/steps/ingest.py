"""Keep what the shard's fetch brought: raw assignments as received, their judgements, its new cursor."""

from campaigns.engine.stage_run import StageRun
from campaigns.stages.ingest import ingest

CHECKPOINT = "poll.ingested"


def run(r: StageRun) -> None:
    r.report.fetched = len(r.fetched.assignments)
    r.report.new = ingest(r.store, r.campaign, r.stage, r.fetched, r.shard)
    if r.progress:
        r.progress(f"{r.stage.name}: ingest", r.report.fetched, r.report.fetched)
