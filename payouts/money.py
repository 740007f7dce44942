"""Money is ``Decimal``: parsing that refuses what no marketplace accepts, rounding, formatting.

Floats never hold money here. A float that arrives anyway (YAML reads ``0.05`` as a float) is
converted through its shortest ``repr`` so ``0.05`` stays ``0.05`` rather than becoming
``0.05000000000000000277``.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from payouts.errors import MoneyError

Money = Decimal
ZERO = Decimal("0")


def quantum(places: int) -> Decimal:
    """The smallest step at ``places`` decimals: 2 -> Decimal('0.01')."""
    return Decimal(1).scaleb(-places)


def to_decimal(value: Any) -> Decimal:
    """Any number-like value as a finite ``Decimal`` (sign unchecked); ``MoneyError`` otherwise."""
    if isinstance(value, bool) or value is None:
        raise MoneyError(f"not an amount of money: {value!r}")
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise MoneyError(f"not an amount of money: {value!r}") from exc
    if not d.is_finite():
        raise MoneyError(f"not a finite amount of money: {value!r}")
    return d


def parse_money(value: Any, places: int = 2) -> Decimal:
    """A non-negative amount with at most ``places`` decimals, quantized to exactly ``places``.

    ``"0.5"`` -> ``Decimal("0.50")``; ``"0.050"`` is fine at 2 places (trailing zeros carry no
    precision); ``"0.005"`` is refused at 2 places (MTurk pays whole cents) but fine at 3 (Toloka).
    """
    d = to_decimal(value)
    if d < 0:
        raise MoneyError(f"amount must not be negative: {value!r}")
    q = quantum(places)
    if d != d.quantize(q, rounding=ROUND_HALF_UP):
        raise MoneyError(f"amount {value!r} has more than {places} decimal places")
    return d.quantize(q)


def round_up_cents(x: Decimal, places: int = 2) -> Decimal:
    """Round toward +infinity to ``places`` decimals: a worker is never paid a fraction less."""
    return to_decimal(x).quantize(quantum(places), rounding=ROUND_CEILING)


def round_half_up(x: Decimal, places: int = 2) -> Decimal:
    """Commercial rounding (0.005 -> 0.01), the rule used for marketplace fees."""
    return to_decimal(x).quantize(quantum(places), rounding=ROUND_HALF_UP)


def format_money(x: Decimal, places: int = 2) -> str:
    """``Decimal('1.5')`` -> ``"1.50"``; rounds half-up if ``x`` is more precise than ``places``."""
    return f"{round_half_up(x, places):.{places}f}"


def usd(x: Decimal, places: int | None = None) -> str:
    """``"$1.50"`` for one-line messages; without ``places``, cents unless ``x`` is finer
    (a Toloka ``$0.005`` stays ``$0.005``, never silently ``$0.01``)."""
    d = to_decimal(x)
    if places is None:
        places = min(max(2, -d.normalize().as_tuple().exponent), 6)
    return "$" + format_money(d, places)
