from datetime import date
from decimal import Decimal as D

import pytest

from payouts.errors import FeeScheduleError, MoneyError
from payouts.fees import fee_schedule, providers


def test_both_providers_have_schedules_today():
    assert {"mturk", "toloka"} <= set(providers())
    assert fee_schedule("mturk").places == 2 and fee_schedule("toloka").places == 3


@pytest.mark.parametrize(("reward", "n", "masters", "fee"), [
    ("0.03", 1, False, "0.01"),   # 20% of 3 cents = 0.6 cent -> half-up 0.01, also the minimum
    ("0.01", 1, False, "0.01"),   # 0.2 cent -> 0.00 -> raised to the $0.01 minimum
    ("0.50", 10, False, "0.20"),  # 10 assignments: 20% + 20%
    ("0.50", 9, False, "0.10"),   # 9 assignments: 20% only
    ("0.50", 1, True, "0.13"),    # Masters: 25% of 0.50 = 0.125 -> half-up 0.13
    ("0.50", 10, True, "0.23"),   # 45% of 0.50 = 0.225 -> 0.23
    ("1.00", 3, False, "0.20"),
    ("0.03", 10, False, "0.01"),  # 40% of 0.03 = 0.012 -> one rounding on the total rate -> 0.01
    ("0.07", 1, False, "0.01"),   # 0.014 -> 0.01
    ("0.08", 1, False, "0.02"),   # 0.016 -> 0.02
])
def test_mturk_assignment_fee(reward, n, masters, fee):
    assert fee_schedule("mturk").assignment_fee(D(reward), n, masters=masters) == D(fee)


@pytest.mark.parametrize(("reward", "n", "fee"), [
    ("0.002", 1, "0.001"),  # 30% of 0.002 = 0.0006 -> half-up 0.001 (also the minimum)
    ("0.001", 1, "0.001"),  # 0.0003 -> 0.000 -> raised to the minimum
    ("0.05", 1, "0.015"),
    ("0.05", 20, "0.015"),  # no overlap surcharge on Toloka
    ("0.035", 3, "0.011"),  # 0.0105 -> half-up 0.011
])
def test_toloka_assignment_fee(reward, n, fee):
    assert fee_schedule("toloka").assignment_fee(D(reward), n) == D(fee)


def test_bonus_fees_and_minimums():
    mturk, toloka = fee_schedule("mturk"), fee_schedule("toloka")
    assert mturk.bonus_fee(D("1.00")) == D("0.20")
    assert mturk.bonus_fee(D("0.02")) == D("0.01")  # minimum per bonus
    assert toloka.bonus_fee(D("0.10")) == D("0.030")
    assert toloka.bonus_fee(D("0.001")) == D("0.001")
    assert mturk.min_reward == D("0.01") and toloka.min_reward == D("0.005")


def test_amount_must_fit_the_provider_precision():
    with pytest.raises(MoneyError, match="more than 2 decimal"):
        fee_schedule("mturk").assignment_fee(D("0.005"), 1)
    with pytest.raises(FeeScheduleError, match="at least 1"):
        fee_schedule("mturk").assignment_fee(D("0.05"), 0)


def test_unknown_provider_and_dates_before_any_schedule():
    with pytest.raises(FeeScheduleError, match="unknown provider 'upwork'.*mturk, prolific, toloka"):
        fee_schedule("upwork")
    with pytest.raises(FeeScheduleError, match="no mturk fee schedule in effect on 2010-01-01"):
        fee_schedule("mturk", on=date(2010, 1, 1))
    assert fee_schedule("mturk", on=date(2015, 7, 21)).effective == date(2015, 7, 21)


def test_a_new_row_takes_effect_on_its_date(monkeypatch, tmp_path):
    """Fee changes are data: add a row with a later date, the old one still answers for the past."""
    import payouts.fees as fees

    base = fees._load()
    newer = base["mturk"][-1].model_copy(update={"effective": date(2031, 1, 1), "reward_rate": D("0.25")})
    monkeypatch.setattr(fees, "_load", lambda: {**base, "mturk": (*base["mturk"], newer)})
    assert fees.fee_schedule("mturk", on=date(2030, 12, 31)).assignment_fee(D("1.00"), 1) == D("0.20")
    assert fees.fee_schedule("mturk", on=date(2031, 1, 1)).assignment_fee(D("1.00"), 1) == D("0.25")
