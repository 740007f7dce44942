"""Pay the bonuses the spec's pricing promises (wage top-ups, trusted workers' tiers)."""

from campaigns.engine.stage_run import StageRun
from campaigns.money.bonuses import pay_bonuses

CHECKPOINT = "poll.paid"


def run(r: StageRun) -> None:
    r.report.bonuses = pay_bonuses(r.store, r.conn, r.campaign, r.stage).paid
