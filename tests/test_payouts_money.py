from decimal import Decimal as D

import pytest

from payouts.errors import MoneyError, PayoutsError
from payouts.money import format_money, parse_money, round_half_up, round_up_cents, usd


@pytest.mark.parametrize(("value", "places", "expected"), [
    ("0.5", 2, D("0.50")), ("1", 2, D("1.00")), (0.05, 2, D("0.05")), (D("0.050"), 2, D("0.05")),
    ("0.005", 3, D("0.005")), (3, 3, D("3.000")), (" 2.10 ", 2, D("2.10")), ("0", 2, D("0.00")),
])
def test_parse_money_accepts_and_quantizes(value, places, expected):
    got = parse_money(value, places)
    assert got == expected and got.as_tuple().exponent == -places


@pytest.mark.parametrize(("value", "places", "fragment"), [
    ("-0.01", 2, "negative"), ("abc", 2, "not an amount"), ("NaN", 2, "not a finite"),
    ("inf", 2, "not a finite"), (float("nan"), 2, "not a finite"), ("0.005", 2, "more than 2 decimal"),
    ("0.0001", 3, "more than 3 decimal"), (True, 2, "not an amount"), (None, 2, "not an amount"),
    ("", 2, "not an amount"),
])
def test_parse_money_refuses_with_one_line_naming_the_value(value, places, fragment):
    with pytest.raises(MoneyError) as err:
        parse_money(value, places)
    msg = str(err.value)
    assert fragment in msg and "\n" not in msg and repr(value) in msg
    assert isinstance(err.value, PayoutsError) and isinstance(err.value, ValueError)


def test_round_up_never_pays_less_and_half_up_is_commercial():
    assert round_up_cents(D("0.0801")) == D("0.09")
    assert round_up_cents(D("0.08")) == D("0.08")
    assert round_up_cents(D("0.0041"), 3) == D("0.005")
    assert round_half_up(D("0.005")) == D("0.01")
    assert round_half_up(D("0.0049")) == D("0.00")
    assert round_half_up(D("0.0005"), 3) == D("0.001")


def test_formatting():
    assert format_money(D("1.5")) == "1.50"
    assert format_money(D("0.005"), 3) == "0.005"
    assert usd(D("0.005")) == "$0.005"  # never shown rounded to a cent it is not
    assert usd(D("12")) == "$12.00"
