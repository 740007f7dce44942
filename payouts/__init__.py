"""Money and trust: prices, marketplace fees as data, budgets, worker trust scores, cost reports.

Pure library code (no store, no marketplace calls) that the campaign engine calls.
"""

from payouts.budget import BudgetCheck, affordable_pages, check_budget
from payouts.errors import BudgetExceeded, FeeScheduleError, MoneyError, PayoutsError
from payouts.fees import FeeSchedule, fee_schedule
from payouts.money import Money, format_money, parse_money, round_half_up, round_up_cents, usd
from payouts.pricing import (
    CostBreakdown,
    bonus_cost,
    effective_hourly_wage,
    forecast,
    reward_per_page,
    validate_reward,
    wage_topup,
)
from payouts.report import CostRow, LedgerRecord, cost_report
from payouts.trust import Action, TrustInputs, TrustPolicy, TrustScore, decide, explain, score

__all__ = [
    "Action", "BudgetCheck", "BudgetExceeded", "CostBreakdown", "CostRow", "FeeSchedule", "FeeScheduleError",
    "LedgerRecord", "Money", "MoneyError", "PayoutsError", "TrustInputs", "TrustPolicy", "TrustScore",
    "affordable_pages", "bonus_cost", "check_budget", "cost_report", "decide", "effective_hourly_wage",
    "explain",
    "fee_schedule", "forecast", "format_money", "parse_money", "reward_per_page", "round_half_up",
    "round_up_cents", "score", "usd", "validate_reward", "wage_topup",
]
