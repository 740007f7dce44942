"""The poll's cursor: what is new on the marketplace for one stage since the last poll.

The cursor is the connector's opaque position (MTurk: each open HIT's answer counts when last read
and the assignments read; Toloka: the last assignments' time and ids), kept in ``PollCursor``, so a
poll in a new process reads only what changed since. A fetch is given the stage's own open
publications (``page_refs``), never the whole account or HIT type; the ingest step writes the
advanced cursor in the same transaction as the answers it brought, so a crash between the two
fetches them again and insert-ignore keeps one copy.
"""

from __future__ import annotations

from sqlmodel import select

from campaigns.stages.pages import page_refs
from campaigns.store.database import Store
from campaigns.store.models import PollCursor, Stage
from connectors.base import BatchRef, Connector, FetchResult


def stored(store: Store, stage: Stage) -> str | None:
    with store.session() as s:
        row = s.exec(select(PollCursor).where(PollCursor.stage_id == stage.id)).first()
        return row.cursor if row else None


def fetch_new(store: Store, conn: Connector, stage: Stage) -> FetchResult:
    """Everything the marketplace has for the stage's open pages since the stored cursor."""
    return conn.fetch(BatchRef.model_validate(stage.batch_ref), stored(store, stage),
                      page_refs(store, stage.id, open_only=True))
