"""N pollers sharing one big stage on PostgreSQL (issue 19, part 4): time to ingest and review new answers.

Run by hand (not a test): ``.venv/bin/python benchmarks/pollers.py --pages 10000 --new 1000 --pollers 1 2 4 8 1``.
One PostgreSQL store (a throwaway cluster from ``tests/pg.py``, or ``--pg-url``) and one local MTurk
marketplace (``--workers`` honest simulated workers); a pairwise campaign of ``--pages`` pages
(page size 2, overlap 2, synthetic golden 0.2) is launched through the product without latency,
the crowd submits a few answers and one untimed poll fixes the stage's shards (``stages.shards``:
``poll_shard_pages`` = 2,500 pages a shard, so 10,000 pages -> 4 shards) and reads every HIT once.
Then ``--latency`` seconds are added to every marketplace request and, for each entry of
``--pollers`` in turn (side by side in one run, on the same stage): the crowd submits ``--new`` more
assignments (simulated time, stopped while the pollers run), N poller processes (spawned before, each
with its own store connection and connector, released together) run one ``poll`` each, and the round
is timed from their release to the last one's end. Every answer submitted is then stored and
reviewed (checked). Per round: ``double_ingested`` = assignments the pollers reported new minus
those the store gained; ``double_approved`` = ApproveAssignment calls the marketplace saw minus the
store's new approvals; ``double_paid`` = assignments with more than one reward entry; ``money_gap``
= the marketplace balance's change minus the ledger's (all must be 0). ``ratio`` = the mean
1-poller round time / this round's. ``--shard-pages 10000 --pollers 1`` is the same stage as one
shard: what one poller takes without shards (a poller lists the account once a round for all its shards).
Prints one JSON line per round; the results and the command go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp_
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

import poll_throughput  # noqa: E402 - after the path it is found on
from poll_throughput import GOOD, POOR, submitted  # noqa: E402

NAME = "pollers"


def write_campaign(work: Path, items: int) -> Path:
    return poll_throughput.write_campaign(work, NAME, items)  # the same campaign as poll_throughput's


def work_until(mp, target: int) -> None:
    poll_throughput.work_until(mp, target, step_s=10.0, limit=5000)


def poller(db: str, url: str, gate: str, me: int) -> dict:
    """One poller process: ready, wait for the common start, one poll."""
    from campaigns.engine.poll import poll
    from campaigns.store.database import open_store
    from connectors.factory import make_connector

    store = open_store(db)
    conn = make_connector("mturk", "local", url)
    Path(gate, f"ready-{me}").touch()
    while not Path(gate, "go").exists():
        time.sleep(0.001)
    t0 = time.time()
    report = poll(store, NAME, endpoint=url, connector=conn)
    t1 = time.time()
    store.close()
    st = report.stages[0] if report.stages else None
    return {"start": t0, "end": t1, "new": st.new if st else 0, "approved": st.approved if st else 0,
            "shards": st.shards if st else 0, "calls": dict(report.api_calls)}


def store_counts(db: str) -> dict:
    from sqlalchemy import func, select

    from campaigns.store.database import open_store
    from campaigns.store.models import Assignment, Campaign, LedgerEntry

    with open_store(db) as store, store.session() as s:
        cid = s.execute(select(Campaign.id).where(Campaign.name == NAME)).scalar_one()
        twice = select(LedgerEntry.assignment_id).where(LedgerEntry.kind == "reward").group_by(
            LedgerEntry.assignment_id).having(func.count() > 1).subquery()
        return {
            "stored": s.execute(select(func.count()).select_from(Assignment)).scalar_one(),
            "unreviewed": s.execute(select(func.count()).select_from(Assignment).where(
                Assignment.review.in_(["pending", "approving", "rejecting"]))).scalar_one(),
            "approved": s.execute(select(func.count()).select_from(Assignment).where(
                Assignment.review == "approved")).scalar_one(),
            "paid_twice": s.execute(select(func.count()).select_from(twice)).scalar_one(),
            "ledger": store.ledger_sum(s, cid),
        }


def run_round(pool: ProcessPoolExecutor, n: int, db: str, url: str, work: Path, index: int) -> tuple[float, list]:
    gate = work / f"gate-{index}"
    gate.mkdir()
    futures = [pool.submit(poller, db, url, str(gate), i) for i in range(n)]
    deadline = time.monotonic() + 300
    while not all((gate / f"ready-{i}").exists() for i in range(n)):
        if time.monotonic() > deadline or any(f.done() for f in futures):
            raise RuntimeError(f"pollers did not start: {[f.exception() for f in futures if f.done()]}")
        time.sleep(0.005)
    t0 = time.time()
    (gate / "go").touch()
    results = [f.result(timeout=3600) for f in futures]
    return max(r["end"] for r in results) - t0, results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=10000, help="pages of the stage")
    ap.add_argument("--new", type=int, default=1000, help="new assignments each round ingests and reviews")
    ap.add_argument("--pollers", type=int, nargs="+", default=[1, 2, 4, 8, 1], help="pollers per round, in order")
    ap.add_argument("--latency", type=float, default=0.05, help="seconds added to every marketplace request")
    ap.add_argument("--workers", type=int, default=300, help="simulated workers")
    ap.add_argument("--shard-pages", type=int, help="CROWD_POLL_SHARD_PAGES for this run (default: the setting's "
                    "2,500; e.g. 10000 for a one-shard baseline)")
    ap.add_argument("--pg-url", help="a PostgreSQL server whose user may CREATE DATABASE (default: a throwaway one)")
    args = ap.parse_args()
    if args.shard_pages:
        os.environ["CROWD_POLL_SHARD_PAGES"] = str(args.shard_pages)  # the spawned pollers inherit it

    import pg
    from sqlmodel import select

    from campaigns.demo.oracles import pairwise_oracle
    from campaigns.engine.launch import launch
    from campaigns.engine.poll import poll
    from campaigns.spec.loading import load_spec
    from campaigns.store.database import open_store
    from campaigns.store.models import Page, PollCursor
    from connectors.factory import make_connector
    from connectors.local import FaultConfig, start_local

    cluster = None if args.pg_url else pg.start()
    server_url = args.pg_url or cluster.url
    db = pg.create_database(server_url, prefix="crowd_pollers")
    work = Path(tempfile.mkdtemp(prefix="pollers-"))
    items = args.pages  # a pair an item, 1 golden pair per 4 real ones, 2 pairs a page: ~1 page an item
    spec_path = write_campaign(work, items)
    truth = {t: q for i in range(items) for t, q in ((GOOD.format(i=i), 1.0), (POOR.format(i=i), 0.5))}
    pool = ProcessPoolExecutor(max(args.pollers), mp_context=mp_.get_context("spawn"))
    try:
        with start_local("mturk", workers=args.workers, seed=5, oracle=pairwise_oracle(truth),
                         balance=Decimal("1000000.00")) as mp:
            store = open_store(db)
            conn = make_connector("mturk", "local", mp.url)
            t0 = time.perf_counter()
            launch(load_spec(spec_path), store, spec_text=spec_path.read_text(), endpoint=mp.url, connector=conn)
            with store.session() as s:
                pages = len(s.exec(select(Page.id)).all())
            print(json.dumps({"launched_pages": pages, "launch_s": round(time.perf_counter() - t0, 1)}), flush=True)
            work_until(mp, 50)
            t0 = time.perf_counter()
            poll(store, NAME, endpoint=mp.url, connector=conn)  # fixes the shards, reads every HIT once
            with store.session() as s:
                shards = len(s.exec(select(PollCursor.id)).all())
            print(json.dumps({"first_poll_s": round(time.perf_counter() - t0, 1), "shards": shards}), flush=True)
            store.close()
            mp.server.faults.config = FaultConfig(latency_s=args.latency, seed=1)
            rows = []
            for index, n in enumerate(args.pollers):
                before, calls_before, spent_before = store_counts(db), dict(mp.calls), mp.balance()
                work_until(mp, submitted(mp) + args.new)
                on_market = submitted(mp)
                seconds, results = run_round(pool, n, db, mp.url, work, index)
                after = store_counts(db)
                approvals = mp.calls.get("ApproveAssignment", 0) - calls_before.get("ApproveAssignment", 0)
                row = {
                    "pollers": n, "seconds": round(seconds, 2), "new": after["stored"] - before["stored"],
                    "per_s": round((after["stored"] - before["stored"]) / seconds, 1),
                    "all_in": after["stored"] == on_market and after["unreviewed"] == 0,
                    "shards_per_poller": [r["shards"] for r in results],
                    "poller_s": [round(r["end"] - r["start"], 2) for r in results],
                    "double_ingested": sum(r["new"] for r in results) - (after["stored"] - before["stored"]),
                    "double_approved": approvals - (after["approved"] - before["approved"]),
                    "double_paid": after["paid_twice"],
                    "money_gap": str((spent_before - mp.balance()) - (after["ledger"] - before["ledger"])),
                    "calls": {op: mp.calls[op] - calls_before.get(op, 0) for op in sorted(mp.calls)
                              if mp.calls[op] - calls_before.get(op, 0)},
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
        ones = [r["seconds"] for r in rows if r["pollers"] == 1]
        if ones:
            base = sum(ones) / len(ones)
            for r in rows:
                print(json.dumps({"pollers": r["pollers"], "seconds": r["seconds"],
                                  "ratio": round(base / r["seconds"], 2)}), flush=True)
    finally:
        pool.shutdown(cancel_futures=True)
        pg.drop_database(db)
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
