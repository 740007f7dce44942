"""Simulated time for the local marketplaces.

API: ``SimClock(speed: float = 0.0, start: datetime | None = None)``; ``now() -> datetime``
(timezone-aware UTC); ``advance(seconds: float)``.

Tests and the demo need time that they control (auto-approval after three days must not take
three days), while ``crowd local serve`` wants time that moves by itself. ``speed == 0`` means
only ``advance`` moves the clock; ``speed X > 0`` adds X simulated seconds per wall second on
top of whatever was advanced manually.

Simulated time starts at the wall-clock time the clock is made (unless ``start`` is given): third-party
clients compute times from their own clock (``ExpireAt=now`` to expire a HIT, ``submitted_gte=now - 1h``,
toloka.streaming's ``created_lte=now - lag``), so a server must not live in another year. At speed 1 the
simulated clock *is* the wall clock; above 1 (or after ``advance``) it runs ahead of it, which a client
that bounds its queries by wall-clock now cannot see until the wall clock catches up.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class SimClock:
    def __init__(self, speed: float = 0.0, start: datetime | None = None):
        if speed < 0:
            raise ValueError("speed must be >= 0")
        start = start or datetime.now(UTC)
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self.speed = speed
        self._start = start.astimezone(UTC)
        self._manual = 0.0
        self._wall0 = time.monotonic()
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        """Simulated seconds since the start."""
        with self._lock:
            wall = (time.monotonic() - self._wall0) * self.speed if self.speed else 0.0
            return self._manual + wall

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.elapsed())

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._manual += seconds
