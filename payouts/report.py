"""Cost reports: ledger entries grouped and summed, for ``crowd costs`` and the demo.

Pure: it takes ledger-entry-like records (the engine maps its rows to ``LedgerRecord``) and never
touches the store. *Spent* is money that left (sent or confirmed), *committed* is money planned
but not yet sent, *failed* is kept apart so a failed payment is visible rather than silently lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from payouts.money import ZERO

GroupBy = Literal["campaign", "stage", "provider", "day", "worker"]
GROUP_FIELDS: tuple[str, ...] = ("campaign", "stage", "provider", "day", "worker")


class LedgerRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", from_attributes=True)

    kind: Literal["reward", "bonus", "fee"]
    amount: Decimal = Field(ge=0)
    state: Literal["planned", "sent", "confirmed", "failed"]
    campaign: str
    stage: str | None = None
    provider: str
    worker: str | None = None
    created_at: datetime


class CostRow(BaseModel):
    """One group. ``group`` maps each grouping field to its value ("" when the record had none)."""

    group: dict[str, str]
    spent: Decimal = ZERO
    committed: Decimal = ZERO
    failed: Decimal = ZERO
    rewards: Decimal = ZERO  # spent on rewards
    bonuses: Decimal = ZERO  # spent on bonuses
    fees: Decimal = ZERO  # spent on fees
    entries: int = 0

    def add(self, r: LedgerRecord) -> None:
        self.entries += 1
        if r.state == "planned":
            self.committed += r.amount
        elif r.state == "failed":
            self.failed += r.amount
        else:
            self.spent += r.amount
            field = {"reward": "rewards", "bonus": "bonuses", "fee": "fees"}[r.kind]
            setattr(self, field, getattr(self, field) + r.amount)


def _key(r: LedgerRecord, field: str) -> str:
    if field == "day":
        return r.created_at.date().isoformat()
    value = getattr(r, field)
    return "" if value is None else str(value)


def cost_report(records: Iterable[LedgerRecord], by: Sequence[GroupBy] = ("campaign",)) -> list[CostRow]:
    """Sum ``records`` per distinct value of the ``by`` fields, rows sorted by those values.
    ``by=()`` gives one row with the grand total."""
    unknown = [f for f in by if f not in GROUP_FIELDS]
    if unknown:
        raise ValueError(f"cannot group by {', '.join(unknown)}; choose from {', '.join(GROUP_FIELDS)}")
    rows: dict[tuple[str, ...], CostRow] = {}
    for r in records:
        key = tuple(_key(r, f) for f in by)
        row = rows.get(key)
        if row is None:
            row = rows[key] = CostRow(group=dict(zip(by, key, strict=True)))
        row.add(r)
    if not by and not rows:
        return [CostRow(group={})]
    return [rows[k] for k in sorted(rows)]


def total(rows: Iterable[CostRow]) -> CostRow:
    """All rows summed into one (the footer of a report)."""
    out = CostRow(group={})
    for row in rows:
        for field in ("spent", "committed", "failed", "rewards", "bonuses", "fees", "entries"):
            setattr(out, field, getattr(out, field) + getattr(row, field))
    return out
