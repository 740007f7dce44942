"""What a page pays and what a batch will cost.

A reward comes from expected work time and a target hourly wage, rounded **up** to the
marketplace's money precision (MTurk: the cent; Toloka: 0.001 USD, from ``FeeSchedule.places``)
so the wage promised is a floor, then raised to the marketplace's minimum reward.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, computed_field

from payouts.errors import MoneyError
from payouts.fees import fee_schedule
from payouts.money import ZERO, parse_money, round_half_up, round_up_cents, to_decimal, usd

SECONDS_PER_HOUR = Decimal(3600)


def _positive(name: str, value: object) -> Decimal:
    d = to_decimal(value)
    if d <= 0:
        raise MoneyError(f"{name} must be positive, got {value!r}")
    return d


def reward_per_page(items_per_page: int, expected_seconds_per_item: float | Decimal,
                    hourly_wage: Decimal, provider: str, on: date | None = None) -> Decimal:
    """items x seconds x wage / 3600, rounded up to the provider's precision, at least its minimum.

    >>> reward_per_page(5, 12, Decimal("9.00"), "mturk")   # 60 s at $9/h = $0.15
    Decimal('0.15')
    """
    if items_per_page < 1:
        raise MoneyError(f"items_per_page must be at least 1, got {items_per_page}")
    schedule = fee_schedule(provider, on)
    wage = _positive("hourly_wage", hourly_wage)
    exact = items_per_page * _positive("expected_seconds_per_item", expected_seconds_per_item) * wage
    reward = round_up_cents(exact / SECONDS_PER_HOUR, schedule.places)
    return max(reward, schedule.min_reward)


def validate_reward(reward: object, provider: str, on: date | None = None) -> Decimal:
    """A fixed reward from a spec: the provider's precision and at least its minimum, or ``MoneyError``."""
    schedule = fee_schedule(provider, on)
    amount = parse_money(reward, schedule.places)
    if amount < schedule.min_reward:
        raise MoneyError(f"reward {usd(amount, schedule.places)} is below the {provider} minimum of "
                         f"{usd(schedule.min_reward, schedule.places)} per page")
    return amount


def effective_hourly_wage(reward_per_page: Decimal, median_seconds_per_page: float | Decimal) -> Decimal:
    """What a page actually pays per hour, to the cent (half-up), given the measured median time."""
    seconds = _positive("median_seconds_per_page", median_seconds_per_page)
    return round_half_up(to_decimal(reward_per_page) * SECONDS_PER_HOUR / seconds, 2)


def wage_topup(reward: Decimal, seconds_worked: float | Decimal, target_wage: Decimal,
               places: int = 2) -> Decimal:
    """The bonus that lifts ``reward`` for ``seconds_worked`` to ``target_wage`` per hour, rounded
    up to ``places``; zero when the reward already reaches it."""
    seconds = to_decimal(seconds_worked)
    if seconds < 0:
        raise MoneyError(f"seconds_worked must not be negative, got {seconds_worked!r}")
    owed = _positive("target_wage", target_wage) * seconds / SECONDS_PER_HOUR - to_decimal(reward)
    return round_up_cents(owed, places) if owed > 0 else ZERO


class CostBreakdown(BaseModel):
    """Worker pay and marketplace fees; ``a + b`` adds them field by field (stage + stage = campaign)."""

    model_config = ConfigDict(frozen=True)

    rewards: Decimal = ZERO
    bonuses: Decimal = ZERO
    fees: Decimal = ZERO

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> Decimal:
        return self.rewards + self.bonuses + self.fees

    def __add__(self, other: CostBreakdown) -> CostBreakdown:
        if not isinstance(other, CostBreakdown):
            return NotImplemented
        return CostBreakdown(rewards=self.rewards + other.rewards, bonuses=self.bonuses + other.bonuses,
                             fees=self.fees + other.fees)

    def __radd__(self, other: object) -> CostBreakdown:
        """So ``sum(breakdowns)`` works (it starts from 0)."""
        if other == 0:
            return self
        return NotImplemented


def forecast(pages: int, assignments_per_page: int, reward: Decimal, provider: str,
             masters: bool = False, on: date | None = None) -> CostBreakdown:
    """Cost of ``pages`` pages with ``assignments_per_page`` assignments each at ``reward``.

    The fee is per assignment and depends on the page's own assignment count (MTurk's 10-or-more
    surcharge is per HIT), so forecast stages with different overlaps separately and add them.
    """
    if pages < 0 or assignments_per_page < 1:
        raise MoneyError(f"need pages >= 0 and assignments_per_page >= 1, "
                         f"got {pages} and {assignments_per_page}")
    schedule = fee_schedule(provider, on)
    reward = validate_reward(reward, provider, on)
    n = pages * assignments_per_page
    fee = schedule.assignment_fee(reward, assignments_per_page, masters)
    return CostBreakdown(rewards=reward * n, fees=fee * n)


def bonus_cost(amount: Decimal, provider: str, on: date | None = None) -> CostBreakdown:
    """One bonus payment and its fee."""
    schedule = fee_schedule(provider, on)
    amount = parse_money(amount, schedule.places)
    return CostBreakdown(bonuses=amount, fees=schedule.bonus_fee(amount))
