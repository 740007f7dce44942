"""Publish the next wave of pages once most published ones have their minimum answers."""

from campaigns.engine.stage_run import StageRun
from campaigns.stages.publish import release_wave

CHECKPOINT = "poll.waves"


def run(r: StageRun) -> None:
    release_wave(r.store, r.conn, r.campaign, r.stage)
