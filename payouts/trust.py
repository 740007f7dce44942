"""Worker trust: how sure are we that a worker answers correctly, and what to do about it.

One combination, chosen so every signal becomes *evidence about the same quantity*, the worker's
probability of answering correctly, and so the amount of evidence is never lost:

* Start from a Beta(prior_alpha, prior_beta) prior on accuracy (from settings).
* Golden answers are the best evidence (known truth): each one is a full observation,
  ``alpha += correct``, ``beta += wrong``.
* Agreement with the crowd (the engine passes, per worker, the share of their labels that match
  what the *other* workers' Dawid-Skene posterior says on tasks where that posterior is confident;
  ``ds_worker_accuracy`` reads DS's fitted confusion diagonal instead) adds
  ``n = min(agreement_weight x tasks, agreement_cap)`` pseudo-observations split by that share.
  Leaving the worker out and keeping only confident tasks makes each such task nearly a golden
  answer, hence weight 1; the cap keeps a crowd-made truth from outweighing real golden answers
  on workers with hundreds of tasks. Measured with benchmarks/quality.py (RESULTS.md): with the
  old self-including agreement a random clicker scored 0.54 where chance is 0.33, and weights
  above 0.5 blocked honest workers.
* The screening score (0..100) adds ``screening_weight`` pseudo-observations: a one-off test says
  something, but less than the work itself, and it never counts as evidence for an action.

From the posterior come a mean and one-sided credible bounds (the Beta quantile,
``scipy.special.betaincinv``). These are put on a chance-corrected scale, ``(accuracy - chance) /
(1 - chance)`` clipped at 0, so 0 means "no better than guessing" (a random clicker on a pairwise
task is 50% accurate yet worthless) and 1 means always right. Speed and position-bias flags are
not evidence of being wrong on an item but signs of not reading, so each flag multiplies the
corrected scores by ``flag_penalty``: a flagged worker is never trusted and is blocked on less
evidence, but flags alone block nobody accurate.

``decide``: block when even the optimistic bound is low (``upper < block_below``: confidently
bad), trust when even the pessimistic bound is high (``lower > trust_above``: confidently good),
and do nothing below ``min_evidence`` (golden answers plus agreement pseudo-observations).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Action(StrEnum):
    none = "none"
    block = "block"
    trust = "trust"


class TrustPolicy(_Model):
    """Every knob of the trust score and the decision; fill it from the campaign's settings."""

    prior_alpha: float = Field(default=1.0, gt=0)
    prior_beta: float = Field(default=1.0, gt=0)
    chance: float = Field(default=0.5, ge=0, lt=1)  # accuracy of guessing: 1 / number of options
    credible: float = Field(default=0.95, gt=0.5, lt=1)  # one-sided level of the bounds
    agreement_weight: float = Field(default=1.0, ge=0)  # pseudo-observations per aggregated task
    agreement_cap: float = Field(default=30.0, ge=0)
    screening_weight: float = Field(default=4.0, ge=0)  # pseudo-observations a screening test is worth
    speed_factor: float = Field(default=0.3, gt=0)  # too fast: median < factor x crowd median
    min_timed_items: int = Field(default=10, ge=1)
    bias_margin: float = Field(default=0.3, gt=0, le=0.5)  # position bias: |left share - 0.5| >= margin
    min_pairwise_answers: int = Field(default=20, ge=1)
    flag_penalty: float = Field(default=0.8, gt=0, le=1)  # multiplies the corrected scores per flag
    min_evidence: float = Field(default=10.0, ge=0)
    block_below: float = Field(default=0.35, ge=0, le=1)  # on the penalised, corrected upper bound
    trust_above: float = Field(default=0.6, ge=0, le=1)  # on the penalised, corrected lower bound


class TrustInputs(_Model):
    """What is known about one worker. Every part is optional; missing parts add no evidence."""

    worker_id: str
    golden_correct: int = Field(default=0, ge=0)
    golden_total: int = Field(default=0, ge=0)
    agreement: float | None = Field(default=None, ge=0, le=1)  # Dawid-Skene per-worker accuracy
    agreement_tasks: int = Field(default=0, ge=0)  # non-golden tasks the worker labelled
    screening_score: float | None = Field(default=None, ge=0, le=100)
    median_seconds_per_item: float | None = Field(default=None, ge=0)
    crowd_median_seconds_per_item: float | None = Field(default=None, gt=0)
    timed_items: int = Field(default=0, ge=0)  # items behind median_seconds_per_item
    left_share: float | None = Field(default=None, ge=0, le=1)  # share of "left", or NoisyBT's biases_
    pairwise_answers: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> TrustInputs:
        if self.golden_correct > self.golden_total:
            raise ValueError(f"golden_correct {self.golden_correct} exceeds golden_total {self.golden_total}")
        return self


class TrustParts(_Model):
    """The signals as measured (before combination), for audit and display."""

    golden_accuracy: float | None
    agreement: float | None
    screening_score: float | None
    speed_ratio: float | None  # worker median / crowd median
    left_share: float | None


class TrustEvidence(_Model):
    """How much each signal weighed, in observations or pseudo-observations."""

    golden: int
    agreement: float
    screening: float
    timed_items: int
    pairwise_answers: int
    total: float  # golden + agreement: what min_evidence is compared with


class TrustScore(_Model):
    worker_id: str
    trust: float  # penalised, chance-corrected posterior mean (0 = guessing, 1 = always right)
    lower: float  # penalised, chance-corrected lower credible bound
    upper: float  # penalised, chance-corrected upper credible bound
    accuracy_mean: float  # posterior on raw accuracy, before correction and penalty
    accuracy_lower: float
    accuracy_upper: float
    alpha: float
    beta: float
    penalty: float
    flags: list[str]
    parts: TrustParts
    evidence: TrustEvidence


def _speed_flag(x: TrustInputs, p: TrustPolicy) -> tuple[float | None, bool]:
    if x.median_seconds_per_item is None or x.crowd_median_seconds_per_item is None:
        return None, False
    ratio = x.median_seconds_per_item / x.crowd_median_seconds_per_item
    return ratio, x.timed_items >= p.min_timed_items and ratio < p.speed_factor


def _bias_flag(x: TrustInputs, p: TrustPolicy) -> bool:
    return (x.left_share is not None and x.pairwise_answers >= p.min_pairwise_answers
            and abs(x.left_share - 0.5) >= p.bias_margin)


def score(x: TrustInputs, policy: TrustPolicy | None = None) -> TrustScore:
    """Combine one worker's signals into a ``TrustScore`` (see the module docstring for why so)."""
    p = policy or TrustPolicy()
    alpha = p.prior_alpha + x.golden_correct
    beta = p.prior_beta + (x.golden_total - x.golden_correct)
    n_agree = min(p.agreement_weight * x.agreement_tasks, p.agreement_cap) if x.agreement is not None else 0.0
    if n_agree:
        alpha += n_agree * x.agreement
        beta += n_agree * (1 - x.agreement)
    n_screen = p.screening_weight if x.screening_score is not None else 0.0
    if n_screen:
        alpha += n_screen * x.screening_score / 100
        beta += n_screen * (1 - x.screening_score / 100)

    ratio, too_fast = _speed_flag(x, p)
    flags = [name for name, on in (("too_fast", too_fast), ("position_bias", _bias_flag(x, p))) if on]
    penalty = p.flag_penalty ** len(flags)

    # the Beta quantile as scipy.special has it (scipy.stats.beta.ppf is the same function, and
    # importing scipy.stats costs 1.2 s more, a poll's whole budget); here, not at the top, so
    # importing this module stays cheap
    from scipy.special import betaincinv

    mean = alpha / (alpha + beta)
    lo = float(betaincinv(alpha, beta, 1 - p.credible))
    hi = float(betaincinv(alpha, beta, p.credible))

    def corrected(acc: float) -> float:
        return round(penalty * max(0.0, (acc - p.chance) / (1 - p.chance)), 6)

    return TrustScore(
        worker_id=x.worker_id, trust=corrected(mean), lower=corrected(lo), upper=corrected(hi),
        accuracy_mean=mean, accuracy_lower=lo, accuracy_upper=hi, alpha=alpha, beta=beta,
        penalty=penalty, flags=flags,
        parts=TrustParts(golden_accuracy=x.golden_correct / x.golden_total if x.golden_total else None,
                         agreement=x.agreement, screening_score=x.screening_score, speed_ratio=ratio,
                         left_share=x.left_share),
        evidence=TrustEvidence(golden=x.golden_total, agreement=n_agree, screening=n_screen,
                               timed_items=x.timed_items, pairwise_answers=x.pairwise_answers,
                               total=x.golden_total + n_agree),
    )


def decide(s: TrustScore, policy: TrustPolicy | None = None) -> Action:
    """``block`` when confidently bad, ``trust`` when confidently good, else ``none``."""
    return _decide(s, policy or TrustPolicy())[0]


def explain(s: TrustScore, policy: TrustPolicy | None = None) -> str:
    """The one-line reason for ``decide``'s answer, to keep with the block or grant."""
    return _decide(s, policy or TrustPolicy())[1]


def _decide(s: TrustScore, p: TrustPolicy) -> tuple[Action, str]:
    flags = f"; flags: {', '.join(s.flags)}" if s.flags else ""
    seen = (f"{s.evidence.golden} golden ({s.parts.golden_accuracy:.0%} right)" if s.evidence.golden
            else "no golden answers")
    if s.evidence.total < p.min_evidence:
        return Action.none, (f"{s.worker_id}: too little evidence "
                             f"({s.evidence.total:g} < {p.min_evidence:g}: {seen}){flags}")
    if s.upper < p.block_below:
        return Action.block, (f"{s.worker_id}: block, trust at most {s.upper:.2f} < {p.block_below:.2f} "
                              f"({seen}, {s.evidence.agreement:g} agreement pseudo-answers){flags}")
    if s.lower > p.trust_above:
        return Action.trust, (f"{s.worker_id}: trust, trust at least {s.lower:.2f} > {p.trust_above:.2f} "
                              f"({seen}, {s.evidence.agreement:g} agreement pseudo-answers){flags}")
    return Action.none, f"{s.worker_id}: undecided, trust {s.lower:.2f}..{s.upper:.2f} ({seen}){flags}"


def ds_worker_accuracy(errors: Any, priors: Mapping[Any, float] | Any) -> dict[str, float]:
    """Per-worker accuracy from a fitted crowd-kit ``DawidSkene``: sum over labels l of
    ``priors_[l] * errors_.loc[(worker, l), l]`` (``errors_`` rows are (worker, observed label),
    columns the true label). Reads fitted attributes only; fitting is the aggregator's job."""
    out: dict[str, float] = {}
    labels = list(priors.keys())
    for worker in errors.index.get_level_values(0).unique():
        acc = 0.0
        for label in labels:
            if (worker, label) in errors.index and label in errors.columns:
                acc += float(priors[label]) * float(errors.loc[(worker, label), label])
        out[str(worker)] = min(max(acc, 0.0), 1.0)
    return out
