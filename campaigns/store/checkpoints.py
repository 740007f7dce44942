"""Named points between the steps of launch and poll, where a test can kill the process.

``CROWD_KILL_AT=name`` (or ``name:N`` for the N-th time the point is reached) makes the process
exit at once with status 137, as ``kill -9`` would: no cleanup, no commit. Tests use it to prove
that a re-run ends in the same state as an uninterrupted run. Unset, it costs one dict lookup.
"""

from __future__ import annotations

import os
from collections import Counter

_seen: Counter = Counter()


def checkpoint(name: str) -> None:
    target = os.environ.get("CROWD_KILL_AT")
    if not target:
        return
    point, _, nth = target.partition(":")
    if point != name:
        return
    _seen[name] += 1
    if _seen[name] >= int(nth or 1):
        os._exit(137)
