"""Score every worker of the campaign and carry out the trust policy (block, unblock, grant, revoke)."""

from campaigns.engine.stage_run import StageRun
from campaigns.quality.actions import apply_quality

CHECKPOINT = "poll.quality"


def run(r: StageRun) -> None:
    r.report.blocked = apply_quality(r.store, r.conn, r.campaign, r.stage)
