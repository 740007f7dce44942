"""Which of a stage's pages one poll lease covers (``campaigns.stages.shards`` decides how many).

Here, at the bottom of ``campaigns``, because every room that reads or writes a stage's pages in
a poll (ingest, review, the cursor) takes one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import true


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    @property
    def stage_wide(self) -> bool:
        """Does this shard's lease carry the stage's own steps?"""
        return self.index == 0

    def holds(self, page_id: Any) -> Any:
        """A SQL condition on a page id column: the page is in this shard."""
        return true() if self.count == 1 else (page_id % self.count == self.index)

    def has(self, page_id: int) -> bool:
        """``holds`` for a page id in hand."""
        return self.count == 1 or page_id % self.count == self.index


WHOLE = Shard()  # a stage of one shard: every page
