"""``reconcile`` finds every way the ledger can differ from the marketplace and ``repair`` makes
the ledger match it again (and match the marketplace's balance change)."""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import select
from test_costs_support import launch_spec, oracle_for, run_to_done, write_campaign

from campaigns.money.reconcile import reconcile
from campaigns.store.database import open_store
from campaigns.store.models import LedgerEntry
from connectors.local import start_local


def test_reconcile_reports_then_repairs_each_kind_of_difference(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'crowd.db'}")
    with start_local("mturk", workers=12, seed=11, oracle=oracle_for(2)) as mp:
        before = mp.balance()
        spec, _ = write_campaign(
            tmp_path,
            "rec",
            "mturk",
            overlap=3,
            reward="0.01",
            extra={"pricing": {"hourly_wage": "3.00", "wage_topup": True, "topup_after": 1}},
        )
        launch_spec(store, spec, mp.url)
        run_to_done(store, mp, ["rec"])
        spent_on_market = before - mp.balance()
        assert reconcile(store, "rec", endpoint=mp.url).ok

        with store.write() as s:  # damage the ledger in three ways
            bonuses = s.exec(
                select(LedgerEntry).where(LedgerEntry.kind == "bonus").order_by(LedgerEntry.id)
            ).all()
            bonuses[0].state = "planned"  # paid, but the confirmation was lost
            fee_key = f"fee:{bonuses[1].idempotency_key}"
            s.delete(s.exec(select(LedgerEntry).where(LedgerEntry.idempotency_key == fee_key)).one())
            s.delete(bonuses[1])  # paid, never recorded
            reward = s.exec(select(LedgerEntry).where(LedgerEntry.kind == "reward")).first()
            aid = reward.assignment_id
            s.delete(reward)  # approved, reward not booked
            s.add(
                LedgerEntry(
                    idempotency_key="bonus:mturk:quality:nope",
                    campaign_id=bonuses[0].campaign_id,
                    provider="mturk",
                    kind="bonus",
                    amount=Decimal("0.05"),
                    state="confirmed",
                    worker_id="W",
                    assignment_id=aid,
                )
            )  # booked, never paid
            s.add(
                LedgerEntry(
                    idempotency_key="fee:bonus:mturk:quality:nope",
                    campaign_id=bonuses[0].campaign_id,
                    provider="mturk",
                    kind="fee",
                    amount=Decimal("0.01"),
                    state="confirmed",
                    worker_id="W",
                    assignment_id=aid,
                )
            )

        found = reconcile(store, "rec", endpoint=mp.url)
        assert not found.ok
        assert sorted(d.kind for d in found.differences) == sorted(
            ["bonus_unconfirmed", "bonus_unrecorded", "reward_unrecorded", "bonus_missing_on_provider"]
        )
        repaired = reconcile(store, "rec", endpoint=mp.url, repair=True)
        assert all(d.repaired for d in repaired.differences)
        # The never-paid bonus is queued again; drop it to compare what actually left the account.
        with store.write() as s:
            queued = s.exec(select(LedgerEntry).where(LedgerEntry.state == "planned")).all()
            assert {e.idempotency_key for e in queued} == {
                "bonus:mturk:quality:nope",
                "fee:bonus:mturk:quality:nope",
            }
            for e in queued:
                s.delete(e)
        final = reconcile(store, "rec", endpoint=mp.url)
    assert final.ok and not final.differences, final.summary_line()
    assert final.ledger_total == spent_on_market
