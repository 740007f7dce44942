"""The records the local MTurk server keeps, and MTurk's fee schedule.

Plain dataclasses: the server's operations mutate them under its one lock and render them into
the service model's output shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")
FEE_RATE = Decimal("0.20")
LARGE_HIT_SURCHARGE = Decimal("0.20")  # extra, on HITs with 10 or more assignments
LARGE_HIT_ASSIGNMENTS = 10


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


def assignment_fee(reward: Decimal, max_assignments: int) -> Decimal:
    """MTurk's commission on one assignment: 20%, +20% for HITs with 10+ assignments, min $0.01."""
    rate = FEE_RATE + (LARGE_HIT_SURCHARGE if max_assignments >= LARGE_HIT_ASSIGNMENTS else 0)
    return max(CENT, money(reward * rate))


def bonus_fee(amount: Decimal) -> Decimal:
    return max(CENT, money(amount * FEE_RATE))


@dataclass
class HITType:
    hit_type_id: str
    title: str
    description: str
    reward: Decimal
    assignment_duration_s: int
    auto_approval_delay_s: int
    keywords: str = ""
    requirements: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class HIT:
    hit_id: str
    hit_type: HITType
    question: str
    created: datetime
    expiration: datetime
    max_assignments: int
    annotation: str | None = None
    layout_id: str | None = None
    reviewing: bool = False
    disposed: bool = False
    review_status: str = "NotReviewed"
    assignment_ids: list[str] = field(default_factory=list)


@dataclass
class Assignment:
    assignment_id: str
    hit_id: str
    worker_id: str
    accepted: datetime
    deadline: datetime
    status: str = "Accepted"  # Accepted | Submitted | Approved | Rejected | Abandoned
    answer: str | None = None
    submitted: datetime | None = None
    auto_approval: datetime | None = None
    approved: datetime | None = None
    rejected: datetime | None = None
    feedback: str | None = None
    submit_seq: int = 0


@dataclass
class QualificationType:
    qt_id: str
    name: str
    description: str
    status: str
    created: datetime
    keywords: str = ""
    test: str | None = None
    answer_key: str | None = None
    test_duration_s: int | None = None
    retry_delay_s: int | None = None
    auto_granted: bool = False
    auto_granted_value: int = 1


@dataclass
class Qualification:
    qt_id: str
    worker_id: str
    value: int | None
    granted: datetime
    status: str = "Granted"  # Granted | Revoked
    locale: dict[str, str] | None = None


@dataclass
class Bonus:
    worker_id: str
    assignment_id: str
    amount: Decimal
    reason: str
    granted: datetime


@dataclass
class TestAttempt:
    qt_id: str
    started: datetime
    tasks: list[Any]


def within(start: datetime, seconds: float, now: datetime) -> bool:
    return now < start + timedelta(seconds=seconds)
