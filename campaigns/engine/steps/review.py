"""Approve or reject each new assignment of the shard (golden accuracy, the spec's review rules); pay its reward."""

from campaigns.engine.stage_run import StageRun
from campaigns.money.review import review_stage

CHECKPOINT = "poll.reviewed"


def run(r: StageRun) -> None:
    r.report.approved, r.report.rejected = review_stage(r.store, r.conn, r.campaign, r.stage, progress=r.progress,
                                                        shard=r.shard)
