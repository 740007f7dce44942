"""The requester API's bodies: what the OpenAPI document at ``/openapi.json`` describes.

The server keeps its own wire types rather than importing crowdbridge's connector types: it is a
marketplace anyone may script against, and its API must not change when the engine's types do.
Widgets mirror the neutral ones field for field, so a connector sends them as they are.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Text = Annotated[str, Field(max_length=1_000_000)]
Key = Annotated[str, Field(min_length=1, max_length=200)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Display(_Body):
    type: Literal["display"] = "display"
    name: Key
    label: str = ""
    text: Text


class Choice(_Body):
    type: Literal["choice"] = "choice"
    name: Key
    label: str
    options: list[tuple[str, str]] = Field(min_length=1)
    required: bool = True


class MultiChoice(_Body):
    type: Literal["multi_choice"] = "multi_choice"
    name: Key
    label: str
    options: list[tuple[str, str]] = Field(min_length=1)


class TextInput(_Body):
    type: Literal["text_input"] = "text_input"
    name: Key
    label: str
    multiline: bool = True
    default: Text = ""
    required: bool = True


class SpanSelect(_Body):
    type: Literal["span_select"] = "span_select"
    name: Key
    label: str
    text: Text
    labels: list[str] = Field(default_factory=lambda: ["issue"], min_length=1)


Widget = Annotated[Display | Choice | MultiChoice | TextInput | SpanSelect, Field(discriminator="type")]


class Item(_Body):
    """One item of a page. ``golden`` is kept for the requester's records; workers never see it."""

    item_key: Key
    widgets: list[Widget] = Field(min_length=1)
    golden: bool = False
    known_answer: dict[str, Any] | None = None


class Requirement(_Body):
    pool_id: Key
    min_score: int | None = None
    exclude: bool = False


# --------------------------------------------------------------------------- requests
class PoolIn(_Body):
    name: Key
    description: str = ""


class ScreeningQuestionIn(_Body):
    id: Key
    text: str
    kind: Literal["single_choice", "multiple_choice", "pairwise", "likert"] = "single_choice"
    options: list[tuple[str, str]] = Field(min_length=1)
    answer: list[str]
    tolerance: int = 0


class ScreeningIn(_Body):
    name: Key
    description: str = ""
    instructions: str = ""
    questions: list[ScreeningQuestionIn] = Field(min_length=1)
    pass_score: int = Field(ge=0, le=100)
    retry_delay_s: int | None = 3600
    duration_s: int = Field(default=1800, gt=0)


class MemberIn(_Body):
    score: int = 1


class ReasonIn(_Body):
    reason: str = ""


class BatchIn(_Body):
    idempotency_key: Key
    name: str = Field(default="", max_length=400)  # the requester's label, e.g. "campaign/stage" (ops view)
    title: str = Field(min_length=1, max_length=500)
    description: str = ""
    instructions: str = ""
    kind: str = ""
    reward: Decimal = Field(ge=0)
    assignments_per_page: int = Field(ge=1)
    assignment_duration_s: int = Field(default=1800, gt=0)
    lifetime_s: int = Field(default=7 * 24 * 3600, gt=0)
    auto_approval_delay_s: int = Field(default=3 * 24 * 3600, ge=0)
    requirements: list[Requirement] = Field(default_factory=list)
    lanes: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], list[Requirement]] = Field(default_factory=dict)


class PageIn(_Body):
    page_id: Key  # the requester's own id, echoed back in assignments and in lookups
    idempotency_key: Key
    items: list[Item] = Field(min_length=1)
    assignments: int | None = Field(default=None, ge=1)


class PagesIn(_Body):
    pages: list[PageIn] = Field(min_length=1, max_length=1000)


class AssignmentQuery(_Body):
    cursor: str | None = None
    pages: list[str] | None = None  # page ids; None: every page of the batch
    limit: int = Field(default=500, ge=1, le=1000)


class ReviewIn(_Body):
    message: str | None = Field(default=None, max_length=10_000)


class BonusIn(_Body):
    idempotency_key: Key
    worker_id: Key
    assignment_id: Key
    amount: Decimal = Field(gt=0)
    reason: str = Field(default="", max_length=10_000)


class ExtendIn(_Body):
    extra_assignments: int = Field(ge=1)
    # Compare-and-set, so a retried extend adds once: applied when the page allows this many now,
    # a no-op when it already allows this many plus ``extra_assignments``, refused otherwise.
    if_assignments: int | None = Field(default=None, ge=1)


class CloseIn(_Body):
    pages: list[str] | None = None


# --------------------------------------------------------------------------- responses
class PoolOut(BaseModel):
    id: str
    name: str
    screening: bool = False


class MemberOut(BaseModel):
    worker_id: str
    score: int


class BatchOut(BaseModel):
    id: str
    name: str
    lane_id: str  # the batch's own lane
    lanes: dict[str, str]  # named lane -> lane id
    created: bool


class PageOut(BaseModel):
    page_id: str
    id: str
    lane_id: str
    created: bool
    assignments: int


class PageState(BaseModel):
    id: str
    page_id: str
    lane: str = ""  # the lane the page waits in
    assignments: int
    submitted: int
    reserved: int
    stopped: bool
    expired: bool
    finished: bool


class AssignmentOut(BaseModel):
    id: str
    page: str  # page id (the server's)
    page_id: str  # the requester's page id
    worker_id: str
    status: Literal["submitted", "approved", "rejected"]
    accepted_at: datetime
    submitted_at: datetime
    answers: dict[str, dict[str, Any]]  # item_key -> field -> value
    raw: str  # the form as received: a JSON list of [name, value] pairs
    session: str | None = None  # the Prolific submission (SESSION_ID) this page answers
    completed: bool = False  # Prolific has been told the submission is complete


class LaneStudyIn(BaseModel):
    """Serve a lane as a Prolific study: participants arrive with ``study_id``, are completed with the code."""

    study_id: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    completion_code: str = Field(min_length=1, max_length=40)


class LaneOut(BaseModel):
    id: str
    batch_id: str
    name: str
    places: int  # assignments of all its pages together (what a study's places must reach)
    study_id: str | None = None


class AssignmentPage(BaseModel):
    assignments: list[AssignmentOut]
    cursor: str | None  # opaque; pass it back for what came after
    has_more: bool
    finished_pages: list[str]  # pages of the query with no work left (on the last result page only)
    open_pages: list[str]  # the query's other pages


class StatusOut(BaseModel):
    id: str
    status: str


class BonusOut(BaseModel):
    id: str
    worker_id: str
    assignment_id: str
    amount: Decimal
    reason: str
    idempotency_key: str
    created: bool = False


class BalanceOut(BaseModel):
    budget: Decimal | None
    spent: Decimal
    available: Decimal | None  # None: no budget set (unlimited)
    currency: str


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorBody
