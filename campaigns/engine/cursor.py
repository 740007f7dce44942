"""The poll's cursor: what is new on the marketplace for one shard of a stage since the last poll.

The cursor is the connector's opaque position (MTurk: each open HIT's answer counts when last read
and the assignments read; Toloka: the last assignments' time and ids), kept in the shard's
``PollCursor`` row (``stages.shards``), so a poll in a new process reads only what changed since. A
fetch is given the shard's own open publications, never the whole account or HIT type; the ingest
step writes the advanced cursor in the same transaction as the answers it brought, so a crash
between the two fetches them again and insert-ignore keeps one copy.

``open_pages`` is read before the fetch and kept with it: a page the marketplace reports finished
is marked done only if it is still as it was then (``steps.pages``), since another poller may have
given it more assignments while this one fetched.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlmodel import select

from campaigns.store.database import Store
from campaigns.store.models import Page, PollCursor, Publication, Stage
from campaigns.store.shard import WHOLE, Shard
from connectors.base import BatchRef, Connector, FetchResult


class OpenPage(NamedTuple):
    page_id: int
    status: str
    assignments: int


def stored(store: Store, stage: Stage, shard: Shard = WHOLE) -> str | None:
    with store.session() as s:
        return s.exec(select(PollCursor.cursor).where(PollCursor.stage_id == stage.id,
                                                      PollCursor.shard == shard.index)).first()


def open_pages(store: Store, stage: Stage, shard: Shard = WHOLE) -> dict[str, OpenPage]:
    """The shard's published pages not yet done, by marketplace ref."""
    with store.session() as s:
        rows = s.exec(select(Publication.provider_ref, Page.id, Page.status, Page.assignments)
                      .join(Page, Page.id == Publication.page_id)
                      .where(Page.stage_id == stage.id, Page.status != "done", shard.holds(Page.id))).all()
    return {ref: OpenPage(pid, status, n) for ref, pid, status, n in rows}


def fetch_new(store: Store, conn: Connector, stage: Stage, shard: Shard = WHOLE,
              pages: dict[str, OpenPage] | None = None) -> FetchResult:
    """Everything the marketplace has for the shard's open pages since its stored cursor."""
    pages = open_pages(store, stage, shard) if pages is None else pages
    return conn.fetch(BatchRef.model_validate(stage.batch_ref), stored(store, stage, shard), sorted(pages))
