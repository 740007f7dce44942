"""Seeded, reproducible fault injection for the local marketplaces.

API: ``FaultConfig(error_rate=0.0, latency_s=0.0, throttle_rate=0.0, drop_rate=0.0,
duplicate_rate=0.0, seed=0)`` and ``FaultInjector(config).decide(operation) -> Fault``, where
``Fault.kind`` is one of ``"error" | "throttle" | "drop" | "lose" | "none"`` ("drop": the
connection closes before the request is handled; "lose": the request is carried out and then the
connection closes, so the client never learns that its write happened), ``Fault.latency_s`` is the
delay to sleep before answering and ``Fault.duplicate`` asks the server to deliver the same
result twice where that makes sense (e.g. a listed assignment repeated on the next page).

A real marketplace fails in these ways; the connectors' retry and idempotency code is only
believable if it is exercised against them. One seeded RNG under a lock makes a run with the
same request order reproducible.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal["error", "throttle", "drop", "lose", "none"]


class FaultConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(0.0, ge=0, le=1)  # answer a server fault (MTurk ServiceFault, Toloka 500)
    latency_s: float = Field(0.0, ge=0)  # real (wall) seconds added to every request
    throttle_rate: float = Field(0.0, ge=0, le=1)  # answer a throttling error
    drop_rate: float = Field(0.0, ge=0, le=1)  # close the connection without an answer
    lose_rate: float = Field(0.0, ge=0, le=1)  # carry the request out, then close without an answer
    duplicate_rate: float = Field(0.0, ge=0, le=1)  # deliver something twice where the protocol allows
    seed: int = 0
    exempt: frozenset[str] = frozenset()  # operations never faulted (e.g. a health check)


@dataclass(frozen=True)
class Fault:
    kind: FaultKind = "none"
    latency_s: float = 0.0
    duplicate: bool = False


class FaultInjector:
    def __init__(self, config: FaultConfig | None = None):
        self.config = config or FaultConfig()
        self._rng = random.Random(self.config.seed)
        self._lock = threading.Lock()
        self._lose_next: dict[str, int] = {}

    def lose_next(self, operation: str, times: int = 1) -> None:
        """Carry out the next ``times`` calls of ``operation`` and lose their responses: the
        deterministic form of ``lose_rate``, for a test that needs one write to go unanswered."""
        with self._lock:
            self._lose_next[operation] = self._lose_next.get(operation, 0) + times

    @property
    def active(self) -> bool:
        c = self.config
        return any((c.error_rate, c.latency_s, c.throttle_rate, c.drop_rate, c.lose_rate, c.duplicate_rate))

    def decide(self, operation: str) -> Fault:
        c = self.config
        with self._lock:
            if self._lose_next.get(operation):
                self._lose_next[operation] -= 1
                return Fault(kind="lose", latency_s=c.latency_s)
        if not self.active or operation in c.exempt:
            return Fault()
        with self._lock:
            r = self._rng.random()
            dup = self._rng.random() < c.duplicate_rate
        kind: FaultKind = "none"
        if r < c.drop_rate:
            kind = "drop"
        elif r < c.drop_rate + c.throttle_rate:
            kind = "throttle"
        elif r < c.drop_rate + c.throttle_rate + c.error_rate:
            kind = "error"
        elif r < c.drop_rate + c.throttle_rate + c.error_rate + c.lose_rate:
            kind = "lose"
        return Fault(kind=kind, latency_s=c.latency_s, duplicate=dup)
