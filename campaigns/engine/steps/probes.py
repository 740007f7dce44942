"""Publish golden-only probe pages for suspects; before follow-ups, so probes claim room first."""

from campaigns.adaptive.probation import open_probes
from campaigns.engine.stage_run import StageRun

CHECKPOINT = "poll.probes"


def run(r: StageRun) -> None:
    r.report.probes = open_probes(r.store, r.conn, r.campaign, r.stage)
