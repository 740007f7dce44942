"""Marketplace fees, computed from schedules kept as data in ``fee_schedules.yaml``.

Rounding rule (both providers): a fee is computed on the exact amount, rounded **half-up** to the
schedule's ``places`` (MTurk: the cent; Toloka: 0.001 USD, its reward precision), and then raised
to the schedule's minimum. One rounding per fee, on the total rate, so a 40% MTurk fee on $0.03
is round(0.012) = $0.01, not round(0.006) + round(0.006) = $0.02.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from payouts.errors import FeeScheduleError
from payouts.money import parse_money, round_half_up, to_decimal


class FeeSchedule(BaseModel):
    """One provider's fees from ``effective`` on. Frozen: schedules are shared, cached data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    effective: date
    currency: str = "USD"
    places: int = Field(ge=0, le=6)
    reward_rate: Decimal = Field(ge=0)
    large_batch_threshold: int | None = Field(default=None, ge=1)
    large_batch_extra_rate: Decimal = Field(default=Decimal("0"), ge=0)
    masters_extra_rate: Decimal = Field(default=Decimal("0"), ge=0)
    bonus_rate: Decimal = Field(ge=0)
    min_fee: Decimal = Field(ge=0)
    min_bonus_fee: Decimal = Field(ge=0)
    min_reward: Decimal = Field(ge=0)

    @field_validator("reward_rate", "large_batch_extra_rate", "masters_extra_rate", "bonus_rate",
                     "min_fee", "min_bonus_fee", "min_reward", mode="before")
    @classmethod
    def _decimal(cls, v: Any) -> Decimal:
        return to_decimal(v)

    def reward_fee_rate(self, max_assignments: int, masters: bool = False) -> Decimal:
        """The fraction of the reward charged per assignment of a page with ``max_assignments``."""
        rate = self.reward_rate
        if self.large_batch_threshold is not None and max_assignments >= self.large_batch_threshold:
            rate += self.large_batch_extra_rate
        if masters:
            rate += self.masters_extra_rate
        return rate

    def assignment_fee(self, reward: Decimal, max_assignments: int, masters: bool = False) -> Decimal:
        """Fee for one assignment paying ``reward`` on a page (HIT / task suite) with
        ``max_assignments`` assignments in all (MTurk: 10 or more costs 20% more)."""
        if max_assignments < 1:
            raise FeeScheduleError(f"max_assignments must be at least 1, got {max_assignments}")
        reward = parse_money(reward, self.places)
        fee = round_half_up(reward * self.reward_fee_rate(max_assignments, masters), self.places)
        return max(fee, self.min_fee)

    def bonus_fee(self, amount: Decimal) -> Decimal:
        """Fee on one bonus payment of ``amount``."""
        amount = parse_money(amount, self.places)
        return max(round_half_up(amount * self.bonus_rate, self.places), self.min_bonus_fee)


@cache
def _load() -> dict[str, tuple[FeeSchedule, ...]]:
    text = resources.files("payouts").joinpath("fee_schedules.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text) or {}
    out: dict[str, tuple[FeeSchedule, ...]] = {}
    for provider, rows in raw.items():
        try:
            schedules = [FeeSchedule(provider=provider, **row) for row in rows]
        except (ValidationError, TypeError) as exc:
            raise FeeScheduleError(f"fee_schedules.yaml: bad row for {provider}: {exc}") from exc
        out[provider] = tuple(sorted(schedules, key=lambda s: s.effective))
    return out


def providers() -> list[str]:
    """Providers that have a fee schedule."""
    return sorted(_load())


_observed: dict[str, dict[str, Decimal]] = {}


def observe(provider: str, *, reward_rate: Decimal, bonus_rate: Decimal) -> None:
    """Rates the marketplace itself reports that it charges (Prolific's cost calculator: its service
    fee and VAT, which differ by workspace). They replace the file's rates for the rest of the process."""
    _observed[provider] = {"reward_rate": Decimal(reward_rate), "bonus_rate": Decimal(bonus_rate)}


def fee_schedule(provider: str, on: date | None = None) -> FeeSchedule:
    """The schedule of ``provider`` in effect on ``on`` (today if None): the newest row whose
    ``effective`` date is not after it, with the rates the marketplace reported (``observe``) if any."""
    schedules = _load().get(provider)
    if schedules is None:
        known = ", ".join(providers())
        raise FeeScheduleError(f"unknown provider {provider!r}; fee schedules exist for {known}")
    day = on or date.today()
    in_effect = [s for s in schedules if s.effective <= day]
    if not in_effect:
        raise FeeScheduleError(
            f"no {provider} fee schedule in effect on {day.isoformat()} "
            f"(earliest is {schedules[0].effective.isoformat()})")
    observed = _observed.get(provider)
    return in_effect[-1].model_copy(update=observed) if observed else in_effect[-1]
