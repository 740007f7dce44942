"""Budget arithmetic: may a campaign spend this much more?

The engine does the atomic part (lock the campaign row, sum the ledger, insert the new entries
in one transaction); this module is only the decision and its one-line reason, so both are the
same for the CLI, the poller and the tests.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from payouts.errors import BudgetExceeded, MoneyError
from payouts.money import ZERO, to_decimal, usd


class BudgetCheck(BaseModel):
    """The outcome of ``check_budget``. ``remaining`` is what is left after the proposed spend
    (negative when refused); ``warning`` is set when an allowed spend crosses ``warn_at``."""

    model_config = ConfigDict(frozen=True)

    allowed: bool
    reason: str
    cap: Decimal | None
    spent: Decimal
    committed: Decimal
    proposed: Decimal
    remaining: Decimal | None
    warning: bool = False

    def raise_if_refused(self) -> BudgetCheck:
        if not self.allowed:
            raise BudgetExceeded(self.reason)
        return self


def _amount(name: str, value: object) -> Decimal:
    d = to_decimal(value)
    if d < 0:
        raise MoneyError(f"{name} must not be negative, got {value!r}")
    return d


def check_budget(cap: Decimal | None, spent: Decimal, committed: Decimal, proposed: Decimal,
                 scope: str = "campaign", warn_at: Decimal = Decimal("0.8")) -> BudgetCheck:
    """Allow ``proposed`` if spent + committed + proposed stays within ``cap`` (None: no cap).

    ``spent`` is money that left (sent or confirmed), ``committed`` money planned but not yet sent
    (published assignments not yet paid, bonuses queued); both count against the cap, so two
    launches can never together overshoot it.
    """
    spent, committed, proposed = (_amount(n, v) for n, v in
                                  (("spent", spent), ("committed", committed), ("proposed", proposed)))
    after = spent + committed + proposed
    if cap is None:
        return BudgetCheck(allowed=True, reason=f"{scope}: no budget cap; {usd(after)} after this spend",
                           cap=None, spent=spent, committed=committed, proposed=proposed, remaining=None)
    cap = _amount("cap", cap)
    remaining = cap - after
    parts = f"spent {usd(spent)}, committed {usd(committed)}, proposed {usd(proposed)}"
    if remaining < 0:
        left = max(cap - spent - committed, ZERO)
        reason = (f"{scope}: refused, {usd(proposed)} would bring the total to {usd(after)} over the "
                  f"{usd(cap)} cap ({parts}); {usd(left)} left")
        return BudgetCheck(allowed=False, reason=reason, cap=cap, spent=spent, committed=committed,
                           proposed=proposed, remaining=remaining)
    warning = cap > 0 and after >= cap * warn_at
    share = f"{(after / cap * 100):.0f}%" if cap > 0 else "100%"
    verdict = "allowed (warning)" if warning else "allowed"
    reason = f"{scope}: {verdict}, {usd(after)} of {usd(cap)} ({share}; {parts})"
    return BudgetCheck(allowed=True, reason=reason, cap=cap, spent=spent, committed=committed,
                       proposed=proposed, remaining=remaining, warning=warning)


def affordable_pages(cap: Decimal | None, spent: Decimal, committed: Decimal,
                     cost_per_page: Decimal) -> int | None:
    """How many more pages of ``cost_per_page`` (reward + fees for all its assignments) fit under
    the cap; None without a cap. Lets the engine publish a partial batch instead of nothing."""
    if cap is None:
        return None
    per_page = _amount("cost_per_page", cost_per_page)
    if per_page == 0:
        return None
    left = _amount("cap", cap) - _amount("spent", spent) - _amount("committed", committed)
    return max(int(left // per_page), 0)
