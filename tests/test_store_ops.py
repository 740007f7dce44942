"""Store operations on SQLite and PostgreSQL: idempotent inserts, leases, locks and exact money.

The concurrency tests use real processes (multiprocessing, spawn), each with its own store, so
they exercise the database's locking rather than Python's. Two warm single-process pools are
shared by the module (spawning is the slow part) and released together through a file gate.
"""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import StatementError

from campaigns.errors import CrowdError
from campaigns.store.database import Store, open_store
from campaigns.store.models import Assignment, Campaign, LedgerEntry, PollCursor, Stage

N_ROWS = 120
BATCH = 8


def seed(store: Store, name: str = "c1", stages: int = 1) -> tuple[int, list[int]]:
    """A campaign and its stages, created idempotently (so racing processes can all call it)."""
    with store.write() as s:
        campaign = dict(name=name, provider="mturk", environment="local", kind="pairwise", spec_yaml="{}",
                        spec_hash="h")
        store.insert_ignore(s, Campaign, [campaign], ["name"])
        cid = s.scalars(select(Campaign.id).where(Campaign.name == name)).one()
        store.insert_ignore(s, Stage, [dict(campaign_id=cid, name=f"s{i}", kind="pairwise",
                                            batch_idempotency_key=f"{name}/s{i}") for i in range(stages)],
                            ["batch_idempotency_key"])
        sids = s.scalars(select(Stage.id).where(Stage.campaign_id == cid).order_by(Stage.id)).all()
    return cid, list(sids)


def assignment(stage_id: int, k: int) -> dict:
    return dict(provider="mturk", assignment_id=f"A{k:05d}", stage_id=stage_id, page_ref=f"H{k // 4}",
                worker_id=f"W{k % 7}", provider_status="submitted", raw=f"<answer>{k}</answer>")


def payment(campaign_id: int, k: int) -> dict:
    return dict(idempotency_key=f"reward:A{k:05d}", campaign_id=campaign_id, provider="mturk", kind="reward",
                amount=Decimal("0.015"), worker_id=f"W{k % 7}", assignment_id=f"A{k:05d}")


def count(store: Store, model) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model))


# -------------------------------------------------------------------- child processes (spawned)
def _wait_for_go(gate: str, me: int) -> None:
    (Path(gate) / f"ready-{me}").touch()
    deadline = time.monotonic() + 60
    while not (Path(gate) / "go").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the other process never got ready")
        time.sleep(0.002)


def _ingest_worker(url: str, reverse: bool, gate: str, me: int) -> list[int]:
    _wait_for_go(gate, me)
    store = open_store(url)  # both processes migrate the fresh database at the same moment
    cid, (sid,) = seed(store, "race")
    keys = list(range(N_ROWS))[::-1] if reverse else list(range(N_ROWS))
    got = [0, 0]
    for i in range(0, N_ROWS, BATCH):
        chunk = keys[i:i + BATCH]
        with store.write() as s:
            got[0] += store.insert_ignore(s, Assignment, [assignment(sid, k) for k in chunk],
                                          ["provider", "assignment_id"])
            got[1] += store.insert_ignore(s, LedgerEntry, [payment(cid, k) for k in chunk],
                                          ["idempotency_key"])
    store.close()
    return got


def _lease_worker(url: str, stage_ids: list[int], owner: str, gate: str, me: int) -> tuple[str, list[int]]:
    store = open_store(url)
    _wait_for_go(gate, me)
    won = [sid for sid in stage_ids if store.acquire_lease(sid, owner, 600)]
    store.close()
    return owner, won


@pytest.fixture(scope="module")
def two_processes():
    pools = [ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) for _ in range(2)]
    yield pools
    for pool in pools:
        pool.shutdown(cancel_futures=True)


def run_two(pools: list[ProcessPoolExecutor], gate: Path, target, args_for) -> list:
    """Run ``target`` in both processes; neither starts its race until both are ready."""
    gate.mkdir()
    futures = [pool.submit(target, *args_for(i), str(gate), i) for i, pool in enumerate(pools)]
    deadline = time.monotonic() + 120
    while not all((gate / f"ready-{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline and not any(f.done() for f in futures), "workers did not start"
        time.sleep(0.002)
    (gate / "go").touch()
    return [f.result(timeout=120) for f in futures]


# ------------------------------------------------------------------------------------ tests
def test_two_processes_ingest_the_same_rows_once(db_url, two_processes, tmp_path):
    results = run_two(two_processes, tmp_path / "gate", _ingest_worker, lambda i: (db_url, i == 1))
    assert [a + b for a, b in zip(*results, strict=True)] == [N_ROWS, N_ROWS]
    store = open_store(db_url)
    try:
        assert count(store, Assignment) == N_ROWS
        assert count(store, LedgerEntry) == N_ROWS
        assert count(store, Campaign) == 1 and count(store, Stage) == 1
        with store.session() as s:
            cid = s.scalars(select(Campaign.id)).one()
            assert store.ledger_sum(s, cid, ["reward"], ["planned"]) == Decimal("0.015") * N_ROWS
    finally:
        store.close()


def test_leases_are_exclusive_across_processes(db_url, two_processes, tmp_path):
    store = open_store(db_url)
    _, sids = seed(store, stages=12)
    results = dict(run_two(two_processes, tmp_path / "gate", _lease_worker,
                           lambda i: (db_url, sids, f"poller-{i}")))
    won_0, won_1 = set(results["poller-0"]), set(results["poller-1"])
    assert won_0.isdisjoint(won_1) and won_0 | won_1 == set(sids)
    with store.session() as s:
        holders = dict(s.execute(select(PollCursor.stage_id, PollCursor.lease_owner)).all())
    store.close()
    assert holders == {sid: ("poller-0" if sid in won_0 else "poller-1") for sid in sids}


def test_lease_expiry_renewal_and_release(db_url):
    store = open_store(db_url)
    _, (sid,) = seed(store)
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    try:
        assert store.acquire_lease(sid, "a", 60, now=t0)
        assert not store.acquire_lease(sid, "b", 60, now=t0 + timedelta(seconds=59))
        assert store.acquire_lease(sid, "a", 60, now=t0 + timedelta(seconds=30))  # renew: now until t0+90
        assert not store.acquire_lease(sid, "b", 60, now=t0 + timedelta(seconds=61))
        assert store.acquire_lease(sid, "b", 60, now=t0 + timedelta(seconds=91))  # expired: b takes it
        assert not store.release_lease(sid, "a")  # a no longer holds it
        assert store.release_lease(sid, "b")
        assert store.acquire_lease(sid, "a", 60, now=t0 + timedelta(seconds=92))
        assert count(store, PollCursor) == 1
    finally:
        store.close()


def test_insert_ignore_counts_only_new_rows_and_fills_defaults(db_url):
    store = open_store(db_url)
    cid, (sid,) = seed(store)
    try:
        with store.write() as s:
            assert store.insert_ignore(s, Assignment, [assignment(sid, k) for k in range(3)],
                                       ["provider", "assignment_id"]) == 3
            assert store.insert_ignore(s, Assignment, [assignment(sid, k) for k in range(5)],
                                       ["provider", "assignment_id"]) == 2
            assert store.insert_ignore(s, LedgerEntry, [payment(cid, k) for k in range(1100)]) == 1100
            assert store.insert_ignore(s, LedgerEntry, []) == 0
        with store.session() as s:
            a = s.scalars(select(Assignment).where(Assignment.assignment_id == "A00004")).one()
            assert a.review == "pending" and a.fetched_at is not None and a.answers == {}
        with pytest.raises(ValueError, match="no column"):
            with store.write() as s:
                store.insert_ignore(s, Assignment, [dict(assignment(sid, 99), colour="red")])
        no_raw = {k: v for k, v in assignment(sid, 98).items() if k != "raw"}
        with pytest.raises(ValueError, match="missing required column 'raw'"):
            with store.write() as s:
                store.insert_ignore(s, Assignment, [no_raw])
        assert count(store, Assignment) == 5
    finally:
        store.close()


def test_money_round_trips_and_sums_exactly(db_url):
    store = open_store(db_url)
    cid, _ = seed(store)
    amounts = {"r1": ("reward", "sent", Decimal("0.015")),
               "r2": ("reward", "confirmed", Decimal("0.1")),
               "r3": ("reward", "confirmed", Decimal("0.2")),
               "b1": ("bonus", "sent", Decimal("1234567.000001")),
               "f1": ("fee", "planned", Decimal("0.000001")),
               "x1": ("reward", "failed", Decimal("7"))}
    try:
        with store.write() as s:
            s.add_all(LedgerEntry(idempotency_key=k, campaign_id=cid, provider="mturk", kind=kind,
                                  state=state, amount=amt) for k, (kind, state, amt) in amounts.items())
            s.get(Campaign, cid).budget_cap = Decimal("12.34")
        with store.session() as s:
            back = {e.idempotency_key: e.amount for e in s.scalars(select(LedgerEntry))}
            assert back == {k: amt for k, (_, _, amt) in amounts.items()}
            assert all(isinstance(v, Decimal) for v in back.values())
            assert s.get(Campaign, cid).budget_cap == Decimal("12.34")
            assert 0.1 + 0.2 != 0.3  # what float would get wrong
            assert store.ledger_sum(s, cid, ["reward"], ["confirmed"]) == Decimal("0.3")
            assert store.ledger_sum(s, cid, ["reward"], ["sent", "confirmed"]) == Decimal("0.315")
            live = ["confirmed", "sent", "planned"]
            assert store.ledger_sum(s, cid, ["reward", "bonus", "fee"], live) == sum(
                amt for _, state, amt in amounts.values() if state != "failed")
            assert store.ledger_sum(s, cid) == sum(amt for _, _, amt in amounts.values())
            assert store.ledger_sum(s, cid + 1) == Decimal("0")
        with pytest.raises(StatementError, match="more than 6 decimal places"):
            with store.write() as s:
                s.add(LedgerEntry(idempotency_key="bad", campaign_id=cid, provider="mturk", kind="fee",
                                  amount=Decimal("0.0000001")))
    finally:
        store.close()


def test_lock_campaign_holds_a_lock_others_cannot_take(db_url):
    store = open_store(db_url)
    cid, _ = seed(store)
    try:
        with pytest.raises(RuntimeError, match="write"):
            with store.session() as s:
                store.lock_campaign(s, cid)
        with pytest.raises(CrowdError):
            with store.write() as s:
                store.lock_campaign(s, cid + 100)
        with store.write() as s:
            assert store.lock_campaign(s, cid).name == "c1"
            if store.dialect == "sqlite":
                other = sqlite3.connect(store.engine.url.database, timeout=0, isolation_level=None)
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
                other.close()
            else:
                url = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
                with psycopg.connect(url, autocommit=True) as other:
                    with pytest.raises(psycopg.errors.LockNotAvailable):
                        other.execute("SELECT id FROM campaigns WHERE id = %s FOR UPDATE NOWAIT", (cid,))
    finally:
        store.close()
