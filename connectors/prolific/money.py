"""Prolific's two money units, converted in one place.

Study rewards, balances, fees and the bonuses a submission lists are integer cents (pence); bonus
*set-up* amounts (``csv_bonuses``) are currency units ("1.50"). Our money is ``Decimal`` currency
units with at most two places: anything finer cannot be paid and is refused, never rounded away.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

CENT = Decimal("0.01")


def to_cents(amount: Decimal) -> int:
    """Currency units to whole cents: ``Decimal("1.50")`` -> 150. Refuses sub-cent amounts."""
    cents = Decimal(amount) * 100
    if not cents.is_finite() or cents != cents.to_integral_value():
        raise ValueError(f"{amount} is not a whole number of cents")
    return int(cents)


def from_cents(cents: int | float | str) -> Decimal:
    """Cents as Prolific reports them (integers, or floats such as 25.0) to currency units."""
    try:
        value = Decimal(str(cents))
    except InvalidOperation:
        raise ValueError(f"{cents!r} is not an amount in cents") from None
    if not value.is_finite() or value != value.to_integral_value():
        raise ValueError(f"{cents!r} is not a whole number of cents")
    return (value / 100).quantize(CENT)


def units_text(amount: Decimal) -> str:
    """An amount as ``csv_bonuses`` takes it: currency units with two places ("4.25")."""
    return f"{from_cents(to_cents(amount)):.2f}"
