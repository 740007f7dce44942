"""Simulated time for the local marketplaces.

API: ``SimClock(speed: float = 0.0, start: datetime | None = None)``; ``now() -> datetime``
(timezone-aware UTC); ``advance(seconds: float)``.

Tests and the demo need time that they control (auto-approval after three days must not take
three days), while ``crowd local serve`` wants time that moves by itself. ``speed == 0`` means
only ``advance`` moves the clock; ``speed X > 0`` adds X simulated seconds per wall second on
top of whatever was advanced manually.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)


class SimClock:
    def __init__(self, speed: float = 0.0, start: datetime | None = None):
        if speed < 0:
            raise ValueError("speed must be >= 0")
        start = start or DEFAULT_START
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
