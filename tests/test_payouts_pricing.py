from decimal import Decimal as D

import pytest

from payouts.errors import MoneyError
from payouts.pricing import (
    CostBreakdown,
    bonus_cost,
    effective_hourly_wage,
    forecast,
    reward_per_page,
    validate_reward,
    wage_topup,
)


@pytest.mark.parametrize(("items", "seconds", "wage", "provider", "reward"), [
    (5, 12, "9.00", "mturk", "0.15"),     # 60 s at $9/h = exactly $0.15
    (5, 13, "9.00", "mturk", "0.17"),     # 65 s -> 0.1625 -> up to 0.17
    (1, 1, "7.25", "mturk", "0.01"),      # 0.002 -> 0.01 (rounded up, and the minimum anyway)
    (3, 10, "12", "toloka", "0.100"),     # 30 s at $12/h = 0.1
    (3, 11, "12", "toloka", "0.110"),
    (1, 7, "10", "toloka", "0.020"),      # 0.01944.. -> up to 0.020 (Toloka precision 0.001)
    (1, 1, "3.00", "toloka", "0.005"),    # 0.000833 -> 0.001 -> raised to the $0.005 minimum
    (4, 2.5, "15.00", "mturk", "0.05"),   # float seconds: 10 s at $15/h = 0.041666 -> 0.05
])
def test_reward_per_page_rounds_up_and_respects_minimum(items, seconds, wage, provider, reward):
    got = reward_per_page(items, seconds, D(wage), provider)
    assert got == D(reward)
    assert got * 3600 >= items * D(str(seconds)) * D(wage)  # the promised wage is a floor
    assert got.as_tuple().exponent == (-2 if provider == "mturk" else -3)


def test_reward_per_page_refusals():
    with pytest.raises(MoneyError, match="items_per_page"):
        reward_per_page(0, 10, D("9"), "mturk")
    with pytest.raises(MoneyError, match="expected_seconds_per_item must be positive"):
        reward_per_page(2, 0, D("9"), "mturk")
    with pytest.raises(MoneyError, match="hourly_wage must be positive"):
        reward_per_page(2, 5, D("-1"), "mturk")


def test_validate_fixed_reward():
    assert validate_reward("0.1", "mturk") == D("0.10")
    assert validate_reward("0.005", "toloka") == D("0.005")
    with pytest.raises(MoneyError, match=r"below the mturk minimum of \$0.01"):
        validate_reward("0", "mturk")
    with pytest.raises(MoneyError, match=r"reward \$0.004 is below the toloka minimum of \$0.005"):
        validate_reward("0.004", "toloka")
    with pytest.raises(MoneyError, match="more than 2 decimal"):
        validate_reward("0.015", "mturk")


def test_effective_wage_and_topup():
    assert effective_hourly_wage(D("0.15"), 60) == D("9.00")
    assert effective_hourly_wage(D("0.10"), 90) == D("4.00")
    assert wage_topup(D("0.10"), 90, D("9.00")) == D("0.13")     # owed 0.225 - 0.10 = 0.125 -> up 0.13
    assert wage_topup(D("0.15"), 60, D("9.00")) == D("0")         # exactly reached
    assert wage_topup(D("0.15"), 30, D("9.00")) == D("0")         # already above
    assert wage_topup(D("0.010"), 10, D("12"), places=3) == D("0.024")  # Toloka precision
    with pytest.raises(MoneyError):
        effective_hourly_wage(D("0.15"), 0)
    with pytest.raises(MoneyError):
        wage_topup(D("0.15"), -1, D("9"))


def test_forecast_applies_the_ten_assignment_rule_per_page():
    # 100 pages x 3 assignments at $0.50: fee 0.10 each
    small = forecast(100, 3, D("0.50"), "mturk")
    assert (small.rewards, small.fees, small.total) == (D("150.00"), D("30.00"), D("180.00"))
    # 10 assignments per page: fee 0.20 each
    big = forecast(10, 10, D("0.50"), "mturk")
    assert (big.rewards, big.fees, big.total) == (D("50.00"), D("20.00"), D("70.00"))
    # minimum fee: 3 cents x 1 assignment -> fee 0.01
    tiny = forecast(7, 1, D("0.03"), "mturk")
    assert (tiny.rewards, tiny.fees) == (D("0.21"), D("0.07"))
    tol = forecast(50, 5, D("0.035"), "toloka")
    assert (tol.rewards, tol.fees) == (D("8.750"), D("2.750"))
    assert forecast(0, 3, D("0.50"), "mturk").total == 0
    with pytest.raises(MoneyError, match="below the toloka minimum"):
        forecast(1, 1, D("0.002"), "toloka")


def test_cost_breakdowns_add_up():
    a = forecast(100, 3, D("0.50"), "mturk")
    b = forecast(10, 10, D("0.50"), "mturk")
    c = bonus_cost(D("1.00"), "mturk")
    assert (c.bonuses, c.fees, c.total) == (D("1.00"), D("0.20"), D("1.20"))
    s = a + b + c
    assert s == CostBreakdown(rewards=D("200.00"), bonuses=D("1.00"), fees=D("50.20"))
    assert s.total == a.total + b.total + c.total == D("251.20")
    assert sum([a, b, c]) == s
    assert s.model_dump()["total"] == D("251.20")  # serialised for the CLI
