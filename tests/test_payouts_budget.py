from decimal import Decimal as D

import pytest

from payouts.budget import affordable_pages, check_budget
from payouts.errors import BudgetExceeded, MoneyError


def test_within_cap_is_allowed_with_remaining():
    c = check_budget(D("10.00"), D("3.00"), D("2.00"), D("1.50"), scope="campaign demo")
    assert c.allowed and not c.warning and c.remaining == D("3.50")
    assert c.reason.startswith("campaign demo: allowed") and "$6.50 of $10.00" in c.reason
    assert c.raise_if_refused() is c


def test_exactly_at_cap_is_allowed_and_warns():
    c = check_budget(D("10.00"), D("6.00"), D("2.00"), D("2.00"))
    assert c.allowed and c.remaining == 0 and c.warning


def test_over_cap_is_refused_with_one_line_reason():
    c = check_budget(D("10.00"), D("6.00"), D("2.40"), D("4.00"), scope="campaign demo")
    assert not c.allowed and c.remaining == D("-2.40")
    assert "\n" not in c.reason
    for part in ("refused", "$4.00", "$12.40", "$10.00 cap", "spent $6.00", "committed $2.40", "$1.60 left"):
        assert part in c.reason
    with pytest.raises(BudgetExceeded, match="refused"):
        c.raise_if_refused()


def test_committed_money_counts_against_the_cap():
    # nothing spent yet, but an earlier launch committed most of the cap
    assert not check_budget(D("5.00"), D("0"), D("4.50"), D("0.60")).allowed
    assert check_budget(D("5.00"), D("0"), D("4.40"), D("0.60")).allowed


def test_no_cap_always_allows():
    c = check_budget(None, D("100"), D("50"), D("1000"))
    assert c.allowed and c.remaining is None and "no budget cap" in c.reason


def test_refuses_negative_inputs():
    with pytest.raises(MoneyError, match="proposed must not be negative"):
        check_budget(D("1"), D("0"), D("0"), D("-1"))


def test_affordable_pages():
    assert affordable_pages(D("10.00"), D("2.00"), D("1.00"), D("1.80")) == 3  # 7.00 // 1.80
    assert affordable_pages(D("10.00"), D("9.00"), D("2.00"), D("1.00")) == 0  # already over
    assert affordable_pages(None, D("0"), D("0"), D("1")) is None
