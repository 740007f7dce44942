"""The campaign spec: one YAML file says what to ask, whom, how to check them and what to pay.

Validated with pydantic; ``load_spec`` turns any error into one ``SpecError`` line that names
the field and its line in the YAML file, before anything is written anywhere.
"""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from decomposition.degrade import MODES as DEGRADE_MODES
from decomposition.degrade import Mode as DegradeMode
from decomposition.graph import get_graph, graph_names


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


MAX_AMOUNT = Decimal("1000000")  # no reward, wage, bonus or budget in a spec is a million or more


def _money(v: Any, places: int = 3) -> Decimal:
    """Money in a spec: a plain decimal, not negative, at most ``places`` decimals, below a million."""
    if isinstance(v, bool) or v is None:
        raise ValueError("must be a decimal amount")
    try:
        d = Decimal(str(v).strip())
    except Exception as exc:  # noqa: BLE001 - any parse failure is the same user error
        raise ValueError(f"not a decimal amount: {v!r}") from exc
    if not d.is_finite():
        raise ValueError(f"not a finite amount: {v!r}")
    if d < 0:
        raise ValueError(f"must not be negative: {v}")
    if -d.as_tuple().exponent > places:
        raise ValueError(f"more than {places} decimal places: {v}")
    if d >= MAX_AMOUNT:
        raise ValueError(f"must be below {MAX_AMOUNT:,}: {v}")
    return d


class Pricing(_Spec):
    """Either ``reward`` per page, or ``seconds_per_item`` x ``hourly_wage``."""

    reward: Decimal | None = None
    seconds_per_item: float | None = Field(default=None, gt=0, le=86400, allow_inf_nan=False)
    hourly_wage: Decimal | None = None
    wage_topup: bool = False  # bonus workers up to hourly_wage after measuring their time
    topup_after: int = Field(default=20, ge=1)  # assignments timed before the median wage is trusted

    _m = field_validator("reward", "hourly_wage", mode="before")(lambda v: None if v is None else _money(v))

    @model_validator(mode="after")
    def _one_way(self) -> Pricing:
        if self.reward is None and (self.seconds_per_item is None or self.hourly_wage is None):
            raise ValueError("give either reward, or both seconds_per_item and hourly_wage")
        if self.wage_topup and self.hourly_wage is None:
            raise ValueError("wage_topup needs hourly_wage, the wage to top workers up to")
        return self


class Budget(_Spec):
    cap: Decimal
    currency: Literal["USD"] = "USD"

    _m = field_validator("cap", mode="before")(lambda v: _money(v, 2))


class Golden(_Spec):
    """Tasks with a known answer (``decomposition.golden``), mixed into pages at ``rate``."""

    items: str | None = None  # JSONL of items with an "answer"; a preference also needs "objective": true
    # pairwise: a response vs a degraded copy of itself; true (shuffled and cut) or a list of modes
    synthetic: bool | list[DegradeMode] = False
    weaker_source: str | None = Field(default=None, min_length=1)  # pairwise: this source's responses must lose
    rate: float = Field(default=0.0, ge=0.0, lt=1.0)  # share of items on a page that are golden

    @field_validator("synthetic", mode="before")
    @classmethod
    def _modes(cls, v: Any) -> Any:
        allowed = f"true, false or a list of modes from {', '.join(DEGRADE_MODES)}"
        if isinstance(v, bool):
            return v
        if not isinstance(v, list) or not v:
            raise ValueError(f"must be {allowed}; got {v!r}")
        bad = [m for m in v if not isinstance(m, str) or m not in DEGRADE_MODES]
        if bad:
            raise ValueError(f"unknown mode {bad[0]!r}; must be {allowed}")
        return v


class Pools(_Spec):
    """Named worker pools (an MTurk qualification / a Toloka skill each), membership kept in the store."""

    required: list[str] = Field(default_factory=list)  # every stage's workers must be in these
    min_score: int | None = None
    blocked: str | None = "blocked"  # excluded from every batch
    trusted: str | None = "trusted"  # workers the trust policy is confident about join it
    probation: str | None = "probation"  # suspects, while probe pages are out for them (campaigns.adaptive.probation)


class Screening(_Spec):
    test: str  # path to a YAML/JSONL screening test
    pool: str = "screened"


class Review(_Spec):
    """How answers are judged: approve valid work; reject only under these rules."""

    reject_invalid: bool = True  # answers that do not parse
    # shares in [0, 1]; the trust policy (payouts.trust) decides on them at every poll
    reject_golden_below: float | None = Field(default=None, ge=0, le=1)  # reject an assignment below it
    block_below_trust: float | None = Field(default=0.35, ge=0, le=1)
    # golden answers + agreement pseudo-answers before a worker may be blocked or trusted
    min_evidence: int = Field(default=8, ge=0)
    trusted_above: float | None = Field(default=0.6, ge=0, le=1)
    block_via: Literal["block", "pool"] = "block"  # a hard marketplace block, or the `pools.blocked` pool
    trust_prior: tuple[float, float] = (1.0, 1.0)  # Beta(alpha, beta) prior on a worker's accuracy
    quality_bonus: Decimal | None = None  # per approved assignment of a worker the trust policy trusts
    # golden-only pages offered to each suspect (trust leaning below block_below_trust, undecided) once
    # follow-up pages are for the trusted pool only, so they still give evidence (campaigns.adaptive.probation)
    probe_pages: int = Field(default=4, ge=0)

    _m = field_validator("quality_bonus", mode="before")(lambda v: None if v is None else _money(v))

    @field_validator("trust_prior")
    @classmethod
    def _prior(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(math.isfinite(x) and x > 0 for x in v):
            raise ValueError(f"both Beta prior counts must be positive numbers; got {list(v)}")
        return v


class Overlap(_Spec):
    """Answers per item; adaptive overlap asks unsettled items again, from ``min`` up to ``max``."""

    min: int = Field(default=3, ge=1)
    max: int | None = Field(default=None, ge=1)
    # the posterior an item's likeliest label must reach (campaigns.adaptive.overlap); below it, it is asked again
    target_agreement: float = Field(default=0.9, gt=0.0, le=1.0)
    # the share of the room between min and max that follow-up answers may use: a stage costs at
    # most min + extra_share * (max - min) assignments per page
    extra_share: float = Field(default=0.5, ge=0.0, le=1.0)
    # who may answer follow-up pages: `trusted`, the `pools.trusted` pool once it has at least `max`
    # members (until then, and without a trusted pool or `review.trusted_above`, anyone); `anyone`:
    # every worker the stage admits
    follow_up_workers: Literal["trusted", "anyone"] = "trusted"

    @model_validator(mode="after")
    def _order(self) -> Overlap:
        if self.max is not None and self.max < self.min:
            raise ValueError("max must be at least min")
        return self


class Exports(_Spec):
    dir: str = "exports"
    formats: list[Literal["trl", "jsonl", "argilla", "sft", "audit"]] = Field(
        default_factory=lambda: ["trl", "jsonl", "argilla"])


class StageSettings(_Spec):
    """Per-stage overrides (Find-Fix-Verify has three stages with their own price and size)."""

    instructions: str | None = None
    page_size: int | None = Field(default=None, ge=1, le=50)
    overlap: int | None = Field(default=None, ge=1)
    min_overlap: int | None = Field(default=None, ge=1)
    pricing: Pricing | None = None
    pools: list[str] = Field(default_factory=list)  # pools this stage requires on top of `pools.required`


class CampaignSpec(_Spec):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    provider: Literal["mturk", "toloka", "inhouse", "prolific"] = "mturk"
    environment: Literal["local", "sandbox", "production"] = "local"
    endpoint_url: str | None = None
    kind: str = "pairwise"  # a stage graph of ``decomposition.graph``: which stages, in which order
    settings: dict[str, Any] = Field(default_factory=dict)  # the kind's own settings
    items: str  # JSONL path, relative to the spec file
    title: str = "Compare two AI responses"
    description: str = "Read a prompt and pick the better of two responses."
    keywords: list[str] = Field(default_factory=lambda: ["comparison", "rating", "AI"])
    instructions: str = ""
    page_size: int = Field(default=5, ge=1, le=50)
    # publish pages this many at a time, the next wave once most of the last have their minimum
    # answers: a fast spammer can then take only the pages there are before a poll blocks them
    wave: int | None = Field(default=None, ge=1)
    overlap: Overlap = Field(default_factory=Overlap)
    golden: Golden = Field(default_factory=Golden)
    screening: Screening | None = None
    pools: Pools = Field(default_factory=Pools)
    locales: list[str] = Field(default_factory=list)
    pricing: Pricing
    budget: Budget | None = None
    review: Review = Field(default_factory=Review)
    stages: dict[str, StageSettings] = Field(default_factory=dict)
    assignment_duration_s: int = Field(default=1800, ge=30, le=31536000)
    lifetime_s: int = Field(default=7 * 24 * 3600, ge=60)
    auto_approval_delay_s: int = Field(default=3 * 24 * 3600, ge=0)
    exports: Exports = Field(default_factory=Exports)
    seed: int = 0

    # Where the spec file lives; relative paths in it resolve against this. Not part of the YAML.
    base_dir: Path | None = Field(default=None, exclude=True)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in graph_names():
            raise ValueError(f"unknown kind {v!r} (known: {', '.join(graph_names())})")
        return v

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, v: dict[str, StageSettings], info: ValidationInfo) -> dict[str, StageSettings]:
        kind = info.data.get("kind")
        if kind is None:
            return v  # the kind itself was refused
        names = get_graph(kind).stage_names()
        unknown = sorted(set(v) - set(names))
        if unknown:
            raise ValueError(f"unknown stage {unknown[0]!r}; a {kind} campaign has {', '.join(names)}")
        return v

    @field_validator("endpoint_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v

    def path(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() or self.base_dir is None else self.base_dir / p
