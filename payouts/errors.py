"""The one small error family of ``payouts``: every message is a single line naming the value."""

from __future__ import annotations


class PayoutsError(ValueError):
    """Base of every payouts error; a ``ValueError`` so pydantic validators can raise it as-is."""


class MoneyError(PayoutsError):
    """An amount that is not a usable amount of money (negative, not a number, too precise)."""


class FeeScheduleError(PayoutsError):
    """No fee schedule for this provider or date, or a malformed fee-schedule file."""


class BudgetExceeded(PayoutsError):
    """A proposed spend would take a campaign over its cap."""
