"""The provider-neutral marketplace boundary.

Everything that crosses between crowdbridge and a marketplace is one of these pydantic
types. Provider objects (boto3 dicts, toloka-kit models) never leave a connector, so the
campaign engine, payouts and decomposition are written once for every marketplace.

A *page* is what one worker does at once (an MTurk HIT, a Toloka task suite). It holds
several *items*, each described by neutral *widgets* (text to show, a choice to make, text
to write, spans to mark). A connector renders widgets into its marketplace's form format and
parses the answers back into ``{item_key: {field: value}}``; a new task kind therefore needs
no connector change.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

Money = Decimal
Provider = Literal["mturk", "toloka", "inhouse", "prolific"]
Environment = Literal["local", "sandbox", "production"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=False, extra="forbid")


# --------------------------------------------------------------------------- widgets
class Display(_Model):
    """Text shown to the worker. Always rendered as text (escaped), never as markup."""

    type: Literal["display"] = "display"
    name: str  # key of the value, e.g. "prompt", "left"; the simulated crowd reads it by name
    label: str = ""
    text: str


class Choice(_Model):
    """Pick exactly one option (radio buttons)."""

    type: Literal["choice"] = "choice"
    name: str
    label: str
    options: list[tuple[str, str]]  # (value, label)
    required: bool = True


class MultiChoice(_Model):
    """Pick any number of options (checkboxes); the answer is the list of chosen values."""

    type: Literal["multi_choice"] = "multi_choice"
    name: str
    label: str
    options: list[tuple[str, str]]


class TextInput(_Model):
    """Free text; ``default`` pre-fills it (a Fix task starts from the original span)."""

    type: Literal["text_input"] = "text_input"
    name: str
    label: str
    multiline: bool = True
    default: str = ""
    required: bool = True


class SpanSelect(_Model):
    """Mark character spans of ``text``; the answer is ``[{"start", "end", "label"}]``."""

    type: Literal["span_select"] = "span_select"
    name: str
    label: str
    text: str
    labels: list[str] = Field(default_factory=lambda: ["issue"])


Widget = Annotated[Display | Choice | MultiChoice | TextInput | SpanSelect, Field(discriminator="type")]


def input_fields(widgets: Sequence[Widget]) -> list[Widget]:
    """The widgets a worker answers (everything but Display)."""
    return [w for w in widgets if not isinstance(w, Display)]


# --------------------------------------------------------------------------- work units
class PageItem(_Model):
    """One item on a page. ``item_key`` is our task id; ``golden`` items carry a known answer
    that the connector may hand to the marketplace's own control-task machinery (Toloka)
    but never shows to workers."""

    item_key: str
    widgets: list[Widget]
    golden: bool = False
    known_answer: dict[str, Any] | None = None


class Page(_Model):
    page_id: str
    idempotency_key: str
    items: list[PageItem]
    assignments: int | None = Field(default=None, ge=1)  # None: the batch's ``assignments_per_page``
    lane: str | None = None  # publish to this named lane of the batch (``BatchSpec.lanes``); None: its own


class PoolSpec(_Model):
    """A named worker pool: an MTurk qualification type or a Toloka skill."""

    name: str
    description: str = ""


class PoolRef(_Model):
    provider: str
    ref: str  # QualificationTypeId / skill id
    name: str


class PoolRequirement(_Model):
    """Workers must be in ``pool`` (``min_score`` None: just be in it) or, with
    ``exclude``, must not be in it (a blocked pool)."""

    pool: PoolRef
    min_score: int | None = None
    exclude: bool = False


class ScreeningQuestion(_Model):
    id: str
    text: str
    kind: Literal["single_choice", "multiple_choice", "pairwise", "likert"] = "single_choice"
    options: list[tuple[str, str]]  # (value, label)
    answer: list[str]  # expected option value(s)
    tolerance: int = 0  # likert: distance in option positions still counted correct


class ScreeningTest(_Model):
    name: str
    description: str
    instructions: str = ""
    questions: list[ScreeningQuestion]
    pass_score: int = Field(ge=0, le=100)  # percent correct needed to pass
    retry_delay_s: int | None = 3600
    duration_s: int = 1800


class BatchSpec(_Model):
    """One published unit of work with one price and one form kind: an MTurk HIT type or a
    Toloka pool (inside a project per stage).

    Each entry of ``lanes`` gives the batch a named *lane*, created with it: another HIT type or
    pool, same form and price, open only to workers who also meet that lane's requirements. A page
    with ``lane`` set goes there; ``fetch`` and ``close`` cover every lane. The engine uses two:
    ``trusted`` for adaptive overlap's follow-up pages (``campaigns.adaptive.overlap``) and ``probation``
    for golden-only probe pages that only suspects may take (``campaigns.adaptive.probation``)."""

    batch_id: str
    idempotency_key: str
    stage: str
    kind: str  # pairwise, listwise, find, fix, verify, classify
    title: str
    description: str
    instructions: str = ""
    keywords: list[str] = Field(default_factory=list)
    reward: Money  # per page (per assignment of one page)
    assignments_per_page: int = Field(ge=1)
    assignment_duration_s: int = 1800
    estimated_duration_s: int | None = None  # how long a page takes (Prolific shows it and checks pay per hour)
    lifetime_s: int = 7 * 24 * 3600
    auto_approval_delay_s: int = 3 * 24 * 3600
    requirements: list[PoolRequirement] = Field(default_factory=list)
    locales: list[str] = Field(default_factory=list)  # ISO country codes
    golden_per_page: int = 0
    real_per_page: int = 1
    lanes: dict[str, list[PoolRequirement]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _lane_names(self) -> BatchSpec:
        bad = [n for n in self.lanes if not LANE_NAME.fullmatch(n)]
        if bad:
            raise ValueError(f"lane names are lowercase words (a-z, 0-9, _), not {bad[0]!r}")
        return self


LANE_NAME = re.compile(r"[a-z][a-z0-9_]*")
LANE_KEY = "lane:"  # BatchRef.extra key prefix: "lane:<name>" holds that lane's HIT type / pool id
LEGACY_LANES = {"restricted": "trusted"}  # extra keys written before lanes had names


class BatchRef(_Model):
    provider: str
    batch_id: str
    ref: str  # HITTypeId / Toloka pool id
    extra: dict[str, str] = Field(default_factory=dict)  # e.g. Toloka project id, "lane:<name>" refs

    @model_validator(mode="after")
    def _legacy_lanes(self) -> BatchRef:
        """A ref stored before lanes had names keeps its one lane, under that lane's name now."""
        for old, name in LEGACY_LANES.items():
            if old in self.extra:
                self.extra.setdefault(LANE_KEY + name, self.extra.pop(old))
        return self

    def has_lane(self, name: str) -> bool:
        return LANE_KEY + name in self.extra

    @property
    def lanes(self) -> list[str]:
        """The batch's HIT types / pools: its own, then its named lanes by name."""
        return [self.ref] + [self.extra[k] for k in sorted(self.extra) if k.startswith(LANE_KEY)]

    def lane(self, page: Page) -> str:
        """Where ``page`` goes: its named lane (which the batch must have), else the batch's own."""
        if page.lane is None:
            return self.ref
        if not self.has_lane(page.lane):
            raise ConnectorError(self.provider, "publish", "NoSuchLane",
                                 f"page {page.page_id} is for lane {page.lane!r} but batch {self.batch_id} "
                                 f"has no such lane")
        return self.extra[LANE_KEY + page.lane]


class PublishedPage(_Model):
    page_id: str
    provider_ref: str  # HITId / task suite id
    created: bool  # False when an earlier publish with the same idempotency key made it
    assignments: int


class RawAssignment(_Model):
    """An answer as received. ``raw`` is the provider payload verbatim; ``answers`` is its
    parse (``{item_key: {field: value}}``) or empty with ``parse_error`` set."""

    provider: str
    assignment_id: str
    page_ref: str
    page_id: str | None
    worker_id: str
    status: Literal["submitted", "approved", "rejected"]
    accepted_at: datetime | None = None
    submitted_at: datetime | None = None
    raw: str
    answers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    parse_error: str | None = None


class FetchResult(_Model):
    assignments: list[RawAssignment]
    cursor: str | None  # opaque; store it and pass it back next time
    finished_pages: list[str] = Field(default_factory=list)  # provider refs with no work left


class BonusReceipt(_Model):
    worker_id: str
    assignment_id: str
    amount: Money
    idempotency_key: str
    provider_ref: str | None = None
    created: bool  # False when the provider already had this idempotency key


# --------------------------------------------------------------------------- errors
class ConnectorError(Exception):
    """A marketplace refused or failed a call. ``code`` is the service's own error code."""

    def __init__(self, provider: str, operation: str, code: str, message: str, *, retryable: bool = False,
                 field: str | None = None):
        self.provider, self.operation, self.code, self.message = provider, operation, code, message
        self.retryable, self.field = retryable, field
        where = f" ({field})" if field else ""
        super().__init__(f"{provider} {operation}: {code}: {message}{where}")


class ProviderUnreachable(ConnectorError):
    """Retries exhausted on throttling, server faults or the network."""


# --------------------------------------------------------------------------- protocol
@runtime_checkable
class Connector(Protocol):
    provider: str
    environment: str
    calls: Counter  # API calls made, per operation name

    def ensure_pool(self, spec: PoolSpec) -> PoolRef: ...
    def ensure_screening(self, test: ScreeningTest) -> PoolRef: ...
    def grant(self, pool: PoolRef, worker_id: str, score: int = 1) -> None: ...
    def revoke(self, pool: PoolRef, worker_id: str, reason: str = "") -> None: ...
    def block(self, worker_id: str, reason: str) -> None: ...
    def unblock(self, worker_id: str, reason: str = "") -> None: ...

    def create_batch(self, spec: BatchSpec) -> BatchRef: ...
    def publish(self, batch: BatchRef, spec: BatchSpec, pages: Sequence[Page]) -> list[PublishedPage]: ...
    def published(self, batch: BatchRef, pages: Sequence[Page]) -> list[PublishedPage]:
        """What the marketplace already holds of these pages (matched by what each published page
        carries of its id), whatever time has passed since: for resuming a publish that died
        between the marketplace's write and the store's, after idempotency tokens expired."""
        ...
    def fetch(self, batch: BatchRef, cursor: str | None, pages: Sequence[str] | None = None) -> FetchResult:
        """New assignments since ``cursor``. ``pages``: the page refs the caller published and
        still waits on; only those are read (an MTurk HIT type is shared by every HIT with the same
        properties, another campaign's included). None: every page of the batch."""
        ...

    def approve(self, assignment_id: str, message: str | None = None) -> None: ...
    def reject(self, assignment_id: str, message: str) -> None: ...
    def pay_bonus(self, worker_id: str, assignment_id: str, amount: Money, reason: str,
                  idempotency_key: str) -> BonusReceipt: ...
    def assignment_status(self, assignment_id: str) -> str:
        """'submitted' | 'approved' | 'rejected' as the marketplace has it now (for replays)."""
        ...
    def extend(self, page_ref: str, extra_assignments: int) -> None: ...
    def page_assignments(self, page_ref: str) -> int:
        """How many assignments the page allows on the marketplace now (to replay an extend safely)."""
        ...
    def watch(self, cursor: str | None, page_refs: Sequence[str]) -> str | None:
        """A cursor that also follows ``page_refs`` (pages added to a batch after its first fetch)."""
        ...
    def stop(self, page_ref: str) -> None:
        """Hand the page to no new worker; work already taken may still come in. Afterwards the
        page is finished once ``fetch`` reports it so or it has ``page_assignments`` answers."""
        ...
    def list_bonuses(self, *, assignment_id: str | None = None) -> list[dict]:
        """Bonuses the marketplace paid (for reconciliation): worker_id, assignment_id, amount, reason."""
        ...
    def close(self, batch: BatchRef, pages: Sequence[str] | None = None) -> None:
        """Hand no more work out: ``pages`` only (the caller's own), or None: the whole batch."""
        ...
    def balance(self) -> Money: ...
