"""Column types and field helpers of the store's tables (``campaigns.store.models``): money as
integer micro-units, JSON and timestamp fields, and the constraint naming convention, set here
before any table is declared.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

MICROS = Decimal("1000000")

# Stable constraint names on every dialect, so later migrations can drop or alter them by name
# (SQLite's batch mode needs names). Set before any table below is declared.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class MoneyType(TypeDecorator):
    """Decimal <-> integer micro-units (1e-6 of the currency unit)."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect) -> int | None:
        if value is None:
            return None
        micros = Decimal(value) * MICROS
        if micros != micros.to_integral_value():
            raise ValueError(f"money value {value} has more than 6 decimal places")
        return int(micros)

    def process_result_value(self, value: int | None, dialect) -> Decimal | None:
        return None if value is None else (Decimal(value) / MICROS).normalize() + Decimal("0.00")


def money_from_micros(value: int | None) -> Decimal:
    """For SQL aggregates (SUM) over MoneyType columns, which come back as plain integers."""
    return (Decimal(value or 0) / MICROS).normalize() + Decimal("0.00")


def _money(**kw) -> Any:
    return Field(default=Decimal("0"), sa_column=Column(MoneyType(), nullable=False, **kw))


def _json(default=None) -> Any:
    return Field(default_factory=(lambda: default() if callable(default) else default),
                 sa_column=Column(JSON, nullable=True))


def _ts(nullable: bool = True, default_now: bool = False) -> Any:
    if default_now:
        return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))
