"""Ask again where the answers do not settle an item yet (adaptive overlap's follow-up pages)."""

from campaigns.adaptive.overlap import ask_again
from campaigns.engine.stage_run import StageRun

CHECKPOINT = "poll.follow_ups"


def run(r: StageRun) -> None:
    r.report.follow_ups = ask_again(r.store, r.conn, r.campaign, r.stage)
