"""Killing ``crowd poll`` during bonus payment (a real process, ``CROWD_KILL_AT``, exit 137) and
running it again pays each bonus exactly once, as the marketplace's own bonus list shows."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import select
from test_costs_support import STEP_S, launch_spec, market_record, oracle_for, write_campaign

from campaigns.engine.poll import poll
from campaigns.money.reconcile import reconcile
from campaigns.store.database import open_store
from campaigns.store.models import LedgerEntry, PollCursor, utcnow
from connectors.local import start_local

CROWD = Path(sys.executable).with_name("crowd")
REPO = Path(__file__).resolve().parents[1]


def crowd_poll(url: str, endpoint: str, kill_at: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CROWD_KILL_AT"}
    if kill_at:
        env["CROWD_KILL_AT"] = kill_at
    return subprocess.run(
        [str(CROWD), "poll", "topup", "--db", url, "--endpoint", endpoint, "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def expire_leases(store) -> None:
    with store.write() as s:
        s.execute(update(PollCursor).values(lease_until=utcnow() - timedelta(seconds=1)))


@pytest.mark.parametrize(
    "provider,kill_at",
    [("mturk", "bonus.after_call:3"), ("mturk", "bonus.before_call:2"), ("toloka", "bonus.after_call:2")],
)
def test_kill_during_bonus_payment_then_rerun_pays_each_bonus_once(provider, kill_at, tmp_path):
    url = f"sqlite:///{tmp_path / 'crowd.db'}"
    store = open_store(url)
    reward, wage = ("0.01", "3.00") if provider == "mturk" else ("0.005", "1.00")
    with start_local(provider, workers=12, seed=5, oracle=oracle_for(2)) as mp:
        spec, _ = write_campaign(
            tmp_path,
            "topup",
            provider,
            overlap=3,
            reward=reward,
            extra={"pricing": {"hourly_wage": wage, "wage_topup": True, "topup_after": 1}},
        )
        launch_spec(store, spec, mp.url)
        mp.advance(STEP_S)
        killed = crowd_poll(url, mp.url, kill_at)
        assert killed.returncode == 137, killed.stderr
        after_kill = len(market_record(mp).bonuses)
        paid_before_kill = int(kill_at.rsplit(":", 1)[1]) - (0 if "after" in kill_at else 1)
        assert after_kill == paid_before_kill
        expire_leases(store)  # the killed poller never released its stage lease; let it time out
        for _ in range(2):  # the re-run (in-process: a fresh process costs seconds of imports), and one more
            poll(store, "topup", endpoint=mp.url)
        record = market_record(mp)
        check = reconcile(store, "topup", endpoint=mp.url)

    per_assignment = Counter(aid for aid, _ in record.bonuses)
    approved = {aid for aid, _, _ in record.approved}
    assert len(approved) > paid_before_kill
    assert set(per_assignment) == approved and set(per_assignment.values()) == {1}
    with store.session() as s:
        ledger = s.exec(select(LedgerEntry).where(LedgerEntry.kind == "bonus")).all()
    assert {e.state for e in ledger} == {"confirmed"}
    assert sorted((e.assignment_id, e.amount) for e in ledger) == sorted(record.bonuses)
    assert check.ok and not check.differences, check.summary_line()
