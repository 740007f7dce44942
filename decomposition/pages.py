"""Pages: what one worker sees at once (an MTurk HIT, a Toloka task suite).

Golden tasks are mixed into every page at ``golden_rate`` and each page is shuffled, so a
worker cannot tell golden items by position. Real tasks are shuffled across pages too, so the
pairs of one prompt spread over several pages (and workers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

from decomposition.errors import InputError
from decomposition.kinds import Rng, as_rng

T = TypeVar("T")


def page_split(page_size: int, golden_rate: float) -> tuple[int, int]:
    """(real, golden) items per page: ``page_size * golden_rate`` golden (rounded half up), at
    least one when the rate is positive, and always at least one real item."""
    if page_size < 1:
        raise InputError(f"page_size must be at least 1, got {page_size}")
    if not 0 <= golden_rate < 1:
        raise InputError(f"golden_rate must be in [0, 1), got {golden_rate}")
    golden = math.floor(page_size * golden_rate + 0.5)
    if golden_rate > 0:
        golden = max(golden, 1)
    golden = min(golden, page_size - 1)
    return page_size - golden, golden


def build_pages(tasks: Sequence[T], golden_tasks: Sequence[T], page_size: int, golden_rate: float,
                rng: Rng) -> list[list[T]]:
    """Split ``tasks`` into pages of ``page_size`` items, ``golden_rate`` of them golden.

    Every real task appears exactly once; golden tasks are drawn without repetition within a
    page (they repeat across pages). The last page may hold fewer real tasks. Deterministic for
    a seed.
    """
    real_n, golden_n = page_split(page_size, golden_rate)
    if golden_n and not golden_tasks:
        raise InputError(f"golden_rate {golden_rate} needs golden tasks, but there are none")
    golden_n = min(golden_n, len(golden_tasks))
    r = as_rng(rng)
    order = list(tasks)
    r.shuffle(order)
    pages = []
    for start in range(0, len(order), real_n):
        page = order[start:start + real_n] + r.sample(list(golden_tasks), golden_n)
        r.shuffle(page)
        pages.append(page)
    return pages
