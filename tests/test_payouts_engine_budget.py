"""The budget cap: launch refuses in one line, bonuses stop at the cap, and the cap holds when
several pollers book and pay at once (SQLite and PostgreSQL), with each bonus paid once."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from sqlmodel import select
from test_costs_support import STEP_S, launch_spec, market_record, oracle_for, write_campaign

from campaigns.errors import CrowdError
from campaigns.money.bonuses import pay_bonuses
from campaigns.money.budget import reserve, spend_state
from campaigns.money.review import review_stage
from campaigns.spec.loading import load_spec
from campaigns.stages.ingest import ingest
from campaigns.store.connect import connector_for
from campaigns.store.database import open_store
from campaigns.store.models import Campaign, LedgerEntry, Stage
from connectors.base import BatchRef
from connectors.local import start_local


def test_reserve_holds_the_cap_under_concurrent_writers(db_url):
    store = open_store(db_url)
    with store.write() as s:
        c = Campaign(
            name="cap",
            provider="mturk",
            environment="local",
            kind="pairwise",
            spec_yaml="{}",
            spec_hash="x",
            budget_cap=Decimal("1.00"),
        )
        s.add(c)
        s.flush()
        cid = c.id
    start = threading.Barrier(4)
    results = []

    def worker(n: int) -> None:
        groups = [
            [
                dict(
                    idempotency_key=f"bonus:{n}:{i}", provider="mturk", kind="bonus", amount=Decimal("0.04")
                ),
                dict(idempotency_key=f"fee:{n}:{i}", provider="mturk", kind="fee", amount=Decimal("0.01")),
            ]
            for i in range(15)
        ]
        start.wait()
        results.append(reserve(store, cid, groups, scope="test"))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with store.session() as s:
        state = spend_state(store, s, cid)
    assert state.committed == Decimal("1.00")  # 20 groups of 0.05: exactly the cap, never more
    assert sum(len(r.booked) for r in results) == 20 and sum(len(r.refused) for r in results) == 40


def test_bonuses_stop_at_the_cap_with_two_pollers_paying_at_once(db_url, tmp_path):
    store = open_store(db_url)
    with start_local("mturk", workers=12, seed=7, oracle=oracle_for(2)) as mp:
        before = mp.balance()
        # 4 pages x 3 assignments x (0.01 + 0.01 fee) = 0.24 of work; room for a few top-ups only.
        spec, _ = write_campaign(
            tmp_path,
            "capped",
            "mturk",
            overlap=3,
            reward="0.01",
            extra={
                "pricing": {"hourly_wage": "3.00", "wage_topup": True, "topup_after": 1},
                "budget": {"cap": "0.45"},
            },
        )
        launch_spec(store, spec, mp.url)
        mp.advance(STEP_S)
        with store.session() as s:
            c = s.exec(select(Campaign).where(Campaign.name == "capped")).one()
            stage = s.exec(select(Stage).where(Stage.campaign_id == c.id)).one()
        # The steps of a poll before bonuses: fetch, ingest, review (approve and book rewards).
        conn = connector_for("mturk", "local", mp.url)
        ingest(store, c, stage, conn.fetch(BatchRef.model_validate(stage.batch_ref), None))
        assert review_stage(store, conn, c, stage)[0] > 0
        # Two more pollers (as if the stage lease had expired) book and pay bonuses at the same time.
        start = threading.Barrier(2)
        errors = []

        def pay() -> None:
            try:
                start.wait()
                pay_bonuses(store, connector_for("mturk", "local", mp.url), c, stage)
            except Exception as exc:  # noqa: BLE001 - surfaced by the assert below
                errors.append(exc)

        threads = [threading.Thread(target=pay) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        spent_on_market = before - mp.balance()
        record = market_record(mp)

    with store.session() as s:
        state = spend_state(store, s, c.id)
        bonus_rows = s.exec(select(LedgerEntry).where(LedgerEntry.kind == "bonus")).all()
    approved = {aid for aid, _, _ in record.approved}
    paid = [aid for aid, _ in record.bonuses]
    assert 0 < len(paid) < len(approved), "the cap must have stopped some bonuses, not all"
    assert len(paid) == len(set(paid)), "a bonus was paid twice"
    assert state.spent == spent_on_market <= Decimal("0.45")
    assert state.spent + state.committed <= Decimal("0.45")
    assert {r.state for r in bonus_rows} == {"confirmed"}
    next_bonus = bonus_rows[0].amount + Decimal("0.01")  # another top-up and its minimum fee
    assert state.spent + state.committed + next_bonus > Decimal("0.45")


def test_launch_refuses_a_forecast_over_the_cap_in_one_line(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'crowd.db'}")
    with start_local("mturk", workers=3, seed=1) as mp:
        spec, _ = write_campaign(
            tmp_path, "over", "mturk", overlap=3, reward="0.50", extra={"budget": {"cap": "1.00"}}
        )
        with pytest.raises(CrowdError) as err:
            launch_spec(store, spec, mp.url)
        assert not mp.server.hits  # nothing published
    assert "refused" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("pricing.reward", "-0.05", "negative"),
        ("pricing.reward", "lots", "not a decimal"),
        ("pricing.reward", "0.0125", "decimal places"),
        ("budget.cap", "10.001", "decimal places"),
        ("review.quality_bonus", "abc", "not a decimal"),
    ],
)
def test_bad_money_in_a_spec_fails_in_one_line(tmp_path, field, value, words):
    section, key = field.split(".")
    extra = {section: {key: value}} if section != "pricing" else {"pricing": {"reward": value}}
    spec, _ = write_campaign(tmp_path, "bad", "mturk", extra=extra)
    with pytest.raises(CrowdError) as err:
        load_spec(spec)
    msg = str(err.value)
    assert "\n" not in msg and words in msg and key in msg


def test_a_budget_check_never_sees_half_of_a_bonus_settling(db_url, monkeypatch):
    """``spend_state`` reads spent and planned money in two statements. A bonus moving from planned
    to confirmed between them must wait for the check's lock, or the check sees it in neither
    (on PostgreSQL each statement sees what was committed before it) and books past the cap."""
    from campaigns.money.bonuses import _settle

    store = open_store(db_url)
    with store.write() as s:
        c = Campaign(name="tear", provider="mturk", environment="local", kind="pairwise", spec_yaml="{}",
                     spec_hash="x", budget_cap=Decimal("1.00"))
        s.add(c)
        s.flush()
        cid = c.id
    reserve(store, cid, [[dict(idempotency_key="b1", provider="mturk", kind="bonus", amount=Decimal("0.20")),
                          dict(idempotency_key="fee:b1", provider="mturk", kind="fee", amount=Decimal("0.04"))]],
            scope="test")
    real_sum = type(store).ledger_sum
    calls, settling = [], []

    def ledger_sum(self, session, campaign_id, kinds=None, states=None):
        out = real_sum(self, session, campaign_id, kinds, states)
        calls.append(states)
        if len(calls) == 1:  # between the two reads, another poller settles the bonus
            t = threading.Thread(target=_settle, args=(store, cid, "b1", "confirmed", "ref"))
            settling.append(t)
            t.start()
            t.join(timeout=1.0)
        return out

    monkeypatch.setattr(type(store), "ledger_sum", ledger_sum)
    if store.dialect == "sqlite":
        pytest.skip("SQLite's single write lock already serialises the check and the settle")
    with store.write() as s:
        store.lock_campaign(s, cid)
        state = spend_state(store, s, cid)
    monkeypatch.setattr(type(store), "ledger_sum", real_sum)
    settling[0].join(timeout=30)  # the settle goes ahead once the check's transaction ends
    assert state.spent + state.committed == Decimal("0.24")
    with store.session() as s:
        assert spend_state(store, s, cid).spent == Decimal("0.24")
