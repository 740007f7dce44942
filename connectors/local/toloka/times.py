"""Toloka's timestamps: naive UTC ISO with milliseconds on the wire, aware UTC inside."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ts: datetime | None) -> str | None:
    """Toloka's timestamp format: naive UTC with milliseconds."""
    return None if ts is None else ts.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")


def parse_ts(value: str) -> datetime:
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
