"""Shards: a big stage's pages split so that several pollers poll one stage at once (issue 19, part 4).

A stage's poll lease keeps two pollers off the same work, so with one lease per stage one stage
could never be polled faster than by one process. Instead a page belongs to shard ``page.id % n``,
and each shard has its own ``PollCursor`` row: its own cursor (a fetch reads only the shard's pages)
and its own lease (ingest, review and finished pages of the shard run under it). Shard 0's lease is
also the stage's: whoever holds it runs the stage-wide steps (quality, bonuses, extensions, probes,
follow-ups, waves, page counts) once per poll.

``n`` is fixed on the stage's first poll, from its page count (``Settings.poll_shard_pages`` pages a
shard, rounded up to a power of two so 2, 4 or 8 pollers divide it evenly, at most ``MAX_SHARDS``),
and stored on every cursor row of the stage: a page never moves to another shard, so the answers
its shard's cursor has counted are never listed again. A stage of up to ``poll_shard_pages`` pages
has one shard and is polled exactly as before shards existed.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from sqlalchemy import func
from sqlmodel import select

from campaigns.store.database import Store
from campaigns.store.models import Page, PollCursor
from campaigns.store.settings import Settings
from campaigns.store.shard import Shard

MAX_SHARDS = 32
NEVER = datetime(2000, 1, 1, tzinfo=UTC)  # the time a cursor row made before any poll was touched




def shard_count(pages: int, shard_pages: int | None = None) -> int:
    need = max(1, math.ceil(pages / (shard_pages or Settings().poll_shard_pages)))
    return min(MAX_SHARDS, 1 << (need - 1).bit_length())


def stage_shards(store: Store, stage_id: int) -> list[Shard]:
    """The stage's shards, the stage-wide one last (so a poller alone sees what the others brought
    in the same poll). The first poll decides their number, under shard 0's row lock: two pollers
    starting at once agree on it, and it never changes afterwards."""
    with store.session() as s:
        n = s.exec(select(PollCursor.shards).where(PollCursor.stage_id == stage_id, PollCursor.shard == 0)).first()
    if n is None:
        n = _decide(store, stage_id)
    return [Shard(k, n) for k in range(1, n)] + [Shard(0, n)]


def _decide(store: Store, stage_id: int) -> int:
    with store.write() as s:
        store.insert_ignore(s, PollCursor, [dict(stage_id=stage_id, shard=0, updated_at=NEVER)], ["stage_id", "shard"])
        row = s.exec(select(PollCursor).where(PollCursor.stage_id == stage_id, PollCursor.shard == 0)
                     .with_for_update()).one()
        if row.shards is None:
            pages = s.exec(select(func.count()).select_from(Page).where(Page.stage_id == stage_id)).one()
            row.shards = shard_count(pages)
            s.add(row)
            # as old as shard 0's row: a new row is not one a poller just polled (``engine.poll``)
            store.insert_ignore(s, PollCursor, [dict(stage_id=stage_id, shard=k, shards=row.shards,
                                                     updated_at=row.updated_at) for k in range(1, row.shards)],
                                ["stage_id", "shard"])
        return row.shards
