"""Mark pages done whose answers are all in or that the marketplace finished (not those just reopened)."""

from campaigns.engine.stage_run import StageRun
from campaigns.stages.pages import refresh_pages

CHECKPOINT = "poll.pages"


def run(r: StageRun) -> None:
    finished = [ref for ref in r.fetched.finished_pages if ref not in r.reopened]
    r.report.pages_done, r.report.pages = refresh_pages(r.store, r.stage.id, finished_refs=finished)
