"""The records the local MTurk server keeps, and MTurk's fee schedule.

Plain dataclasses: the server's operations mutate them under its one lock and render them into
the service model's output shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")
FEE_RATE = Decimal("0.20")
LARGE_HIT_SURCHARGE = Decimal("0.20")  # extra, on HITs with 10 or more assignments
LARGE_HIT_ASSIGNMENTS = 10
MASTERS_SURCHARGE = Decimal("0.05")  # extra, on HITs that require the Masters qualification


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


def assignment_fee(reward: Decimal, max_assignments: int, masters: bool = False) -> Decimal:
    """MTurk's commission on one assignment: 20%, +20% for HITs with 10+ assignments, +5% for
    HITs that require Masters, min $0.01."""
    rate = FEE_RATE + (LARGE_HIT_SURCHARGE if max_assignments >= LARGE_HIT_ASSIGNMENTS else 0)
    return max(CENT, money(reward * (rate + (MASTERS_SURCHARGE if masters else 0))))


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
    notification: dict[str, Any] | None = None  # UpdateNotificationSettings' NotificationSpecification
    notify: bool = False  # ... and whether it is Active


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
    deleted: bool = False


@dataclass
class QualificationRequest:
    """A worker's request for a requestable qualification: no test, or a test without an answer
    key, so the requester decides (AcceptQualificationRequest / RejectQualificationRequest)."""

    request_id: str
    qt_id: str
    worker_id: str
    submitted: datetime
    test: str | None = None
    answer: str | None = None


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


@dataclass(frozen=True)
class SystemQualificationType:
    """A qualification type MTurk itself maintains; ``attribute`` names the simulated worker's
    property it reads."""

    qt_id: str
    name: str
    description: str
    attribute: str


LOCALE_QT = "00000000000000000071"
SYSTEM_QUALIFICATION_TYPES = {
    t.qt_id: t
    for t in (
        SystemQualificationType(
            "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6", "Masters", "Masters qualification (sandbox)", "master"
        ),
        SystemQualificationType("2F1QJWKUDD8XADTFD2Q0G6UTO95ALH", "Masters", "Masters qualification", "master"),
        SystemQualificationType(LOCALE_QT, "Worker_Locale", "The location of the Worker", "locale"),
        SystemQualificationType(
            "000000000000000000L0",
            "Worker_PercentAssignmentsApproved",
            "The percentage of assignments the Worker has submitted that were subsequently approved",
            "approval_rate",
        ),
        SystemQualificationType(
            "00000000000000000040",
            "Worker_NumberHITsApproved",
            "The total number of HITs submitted by a Worker that have been approved",
            "number_approved",
        ),
        SystemQualificationType(
            "00000000000000000060",
            "Worker_Adult",
            "The Worker has agreed to work on HITs that may contain potentially explicit or offensive content",
            "adult",
        ),
    )
}
MASTERS_QTS = frozenset(t.qt_id for t in SYSTEM_QUALIFICATION_TYPES.values() if t.attribute == "master")
SYSTEM_QT_CREATED = datetime(2005, 11, 2, tzinfo=UTC)  # MTurk's launch; the types predate every requester


def within(start: datetime, seconds: float, now: datetime) -> bool:
    return now < start + timedelta(seconds=seconds)
