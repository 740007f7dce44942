"""Carry out the extra assignments asked for since the last poll (pages marked ``extending``)."""

from campaigns.adaptive.overlap import finish_extensions
from campaigns.engine.stage_run import StageRun

CHECKPOINT = "poll.extended"


def run(r: StageRun) -> None:
    r.reopened = finish_extensions(r.store, r.conn, r.stage)
    r.report.extended = len(r.reopened)
