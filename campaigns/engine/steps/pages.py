"""Mark pages done whose answers are all in or that the marketplace finished (not those just reopened).

A finished report is as old as the fetch: a page that got more assignments since (another poller's
extensions step, or an item's top-up) is still open although the fetch saw it finished, so only a
page still as it was before the fetch (published, same assignments) is marked done from it. Each
shard marks its own finished pages; counting answers against every open page is stage-wide.
"""

from collections import defaultdict

from sqlalchemy import update

from campaigns.engine.cursor import OpenPage
from campaigns.engine.stage_run import StageRun
from campaigns.stages.pages import refresh_pages
from campaigns.store.database import Store
from campaigns.store.models import Page

CHECKPOINT = "poll.pages"


def run(r: StageRun) -> None:
    finished = [ref for ref in r.fetched.finished_pages if ref not in r.reopened]
    mark_finished(r.store, finished, r.open_pages)
    if r.shard.stage_wide:
        r.report.pages_done, r.report.pages = refresh_pages(r.store, r.stage.id)


def mark_finished(store: Store, refs: list[str], before: dict[str, OpenPage]) -> None:
    """Mark done the pages of ``refs`` that are unchanged since ``before`` (one UPDATE per page size)."""
    by_size: dict[int, list[int]] = defaultdict(list)
    for ref in refs:
        page = before.get(ref)
        if page is not None and page.status == "published":
            by_size[page.assignments].append(page.page_id)
    if not by_size:
        return
    with store.write() as s:
        for size, ids in sorted(by_size.items()):
            s.exec(update(Page).where(Page.id.in_(sorted(ids)), Page.status == "published",
                                      Page.assignments == size).values(status="done"))
