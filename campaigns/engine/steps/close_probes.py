"""Stop open probe pages and empty the probation pool once nothing else of the stage waits."""

from campaigns.adaptive.probation import close_probes
from campaigns.engine.stage_run import StageRun

CHECKPOINT = "poll.probes_closed"


def run(r: StageRun) -> None:
    close_probes(r.store, r.conn, r.campaign, r.stage)
