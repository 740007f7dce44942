"""Fees as the marketplace itself reports them, where it does.

Prolific's fee (its service fee plus the workspace's VAT) differs by workspace and is told by its
cost calculator, so a connector that has ``fee_rates()`` is asked once per process, before any
money is forecast or booked, and its rates replace the fee schedule file's for that provider.
"""

from __future__ import annotations

from connectors.base import Connector
from payouts.fees import observe


def adopt_fee_rates(conn: Connector) -> None:
    rates = getattr(conn, "fee_rates", None)
    if rates is not None:
        observe(conn.provider, **rates())
