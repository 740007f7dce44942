"""Calls per poll at N open pages: crowdbridge's fetch against the pagination minimum.

Run by hand (not a test): ``.venv/bin/python benchmarks/poll_calls.py --open 100 1000 10000``.
For each N, a fresh local marketplace gets N open pages (2 assignments each); then, side by side
on the same marketplace state, every poller polls: a first poll (cursor None), an idle one (a
restarted poller: new connector, stored cursor, nothing new), a busy one after ``--busy`` simulated
seconds of crowd work, and an idle one again. Prints one JSON line per poll; results and the
command go to benchmarks/RESULTS.md.

MTurk: ``minimum`` = ceil(N / 100) ListHITs pages + one ListAssignmentsForHIT per HIT whose
counts changed (measured from two plain boto3 ListHITs snapshots, not counted); the issue's target
for an idle poll is ``minimum + 1``. With ``--baseline``, the connector as committed (git HEAD:
one ListAssignmentsForHIT per open HIT every poll, plus ListReviewableHITs) polls alongside.
Toloka: ``minimum`` = one ``GET /assignments`` page per ``fetch_limit`` new answers (at least one),
plus one call to confirm that the pages whose answers are all in are finished; target for an idle
poll: 2 calls.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from connectors.base import BatchSpec, Choice, Display, Page, PageItem  # noqa: E402
from connectors.local import start_local  # noqa: E402
from connectors.mturk import MTurkConnector  # noqa: E402
from connectors.mturk.connector import answer_counts  # noqa: E402
from connectors.retry import RetryPolicy  # noqa: E402
from connectors.toloka import TolokaConnector  # noqa: E402

FAST = RetryPolicy(max_attempts=6, initial_s=0.01, max_s=0.05)


def pages(n: int) -> list[Page]:
    choice = Choice(name="label", label="Which is better?", options=[("a", "A"), ("b", "B")])
    return [Page(page_id=f"p{i}", idempotency_key=f"p-key-{i}", items=[
        PageItem(item_key=f"p{i}", widgets=[Display(name="text", text=f"pair {i}: left or right?"), choice])])
        for i in range(n)]


def spec(batch_id: str) -> BatchSpec:
    return BatchSpec(batch_id=batch_id, idempotency_key=batch_id, stage="s", kind="classify",
                     title=f"Compare ({batch_id})", description="Pick the better one", reward=Decimal("0.05"),
                     assignments_per_page=2, lifetime_s=7 * 86400, real_per_page=1)


def head_module(path: str, name: str):
    """The connector module as committed (git HEAD), for the before/after comparison."""
    source = subprocess.run(["git", "-C", str(REPO), "show", f"HEAD:{path}"], check=True, capture_output=True,
                            text=True).stdout
    module_spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    exec(compile(source, f"HEAD:{path}", "exec"), module.__dict__)  # noqa: S102 - our own file at HEAD
    return module


def run_polls(pollers: dict, batch, refs: list[str], minimum, emit, advance) -> None:
    """Each poller polls each phase from its own cursor, passing the pages not finished yet (as
    the engine passes the pages not done)."""
    cursors: dict[str, str | None] = {name: None for name in pollers}
    waiting = {name: set(refs) for name in pollers}
    for phase in ("first", "idle", "busy", "idle again"):
        context = advance() if phase == "busy" else None
        for name, make in pollers.items():
            conn = make()  # a new poller each time: all it has is the cursor, as after a restart
            t0 = time.perf_counter()
            result = conn.fetch(batch, cursors[name], sorted(waiting[name]))
            seconds = time.perf_counter() - t0
            cursors[name] = result.cursor
            calls = dict(sorted(conn.calls.items()))
            floor = minimum(phase, context, result, len(waiting[name]))
            emit({"poller": name, "phase": phase, "open": len(waiting[name]), "new": len(result.assignments),
                  "finished": len(result.finished_pages), "calls": sum(calls.values()), "minimum": floor,
                  "by_operation": calls, "seconds": round(seconds, 2)})
            waiting[name] -= set(result.finished_pages)


def mturk(n: int, workers: int, busy_s: float, baseline: bool, emit) -> None:
    with start_local("mturk", workers=workers, seed=1) as mp:
        owner = MTurkConnector("local", mp.url, retry=FAST)
        s = spec(f"poll-{n}")
        batch = owner.create_batch(s)
        t0 = time.perf_counter()
        refs = sorted(p.provider_ref for p in owner.publish(batch, s, pages(n)))
        print(f"# mturk: published {n} HITs in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

        def counts() -> dict[str, tuple[int, int]]:  # a plain boto3 read, not counted
            return {h["HITId"]: answer_counts(h) for page in owner.client.get_paginator("list_hits").paginate(
                PaginationConfig={"PageSize": 100}) for h in page["HITs"]}

        def advance():
            before = counts()
            mp.advance(busy_s)
            after = counts()
            return sum(before.get(h) != after.get(h) for h in refs)

        def minimum(phase, changed, result, open_now) -> int:
            return math.ceil(open_now / 100) + (changed or 0 if phase == "busy" else 0)

        pollers = {"crowdbridge": lambda: MTurkConnector("local", mp.url, retry=FAST)}
        if baseline:
            head = head_module("connectors/mturk/connector.py", "_head_mturk_connector")
            pollers["HEAD"] = lambda: head.MTurkConnector("local", mp.url, retry=FAST)
        run_polls(pollers, batch, refs, minimum, lambda row: emit({"provider": "mturk", **row}), advance)


def toloka(n: int, workers: int, busy_s: float, baseline: bool, emit) -> None:
    with start_local("toloka", workers=workers, seed=1) as mp:
        owner = TolokaConnector("local", mp.url, retry=FAST)
        s = spec(f"poll-{n}")
        batch = owner.create_batch(s)
        t0 = time.perf_counter()
        refs = sorted(p.provider_ref for p in owner.publish(batch, s, pages(n)))
        print(f"# toloka: published {n} task suites in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

        def minimum(phase, _, result, open_now) -> int:
            reads = max(1, math.ceil(len(result.assignments) / owner.fetch_limit)) if open_now else 0
            return reads + (1 if result.finished_pages else 0)

        pollers = {"crowdbridge": lambda: TolokaConnector("local", mp.url, retry=FAST)}
        if baseline:  # HEAD bounded reads by this machine's clock - lag; the local clock runs ahead of it
            head = head_module("connectors/toloka/connector.py", "_head_toloka_connector")
            pollers["HEAD"] = lambda: head.TolokaConnector("local", mp.url, retry=FAST, lag_s=-30 * 86400)
        run_polls(pollers, batch, refs, minimum, lambda row: emit({"provider": "toloka", **row}),
                  lambda: mp.advance(busy_s))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--open", type=int, nargs="+", default=[100, 1000, 10000], help="open pages per run")
    ap.add_argument("--provider", default="both", choices=["mturk", "toloka", "both"])
    ap.add_argument("--workers", type=int, default=40, help="simulated workers")
    ap.add_argument("--busy", type=float, default=120.0, help="simulated seconds of crowd work before the busy poll")
    ap.add_argument("--baseline", action="store_true", help="also poll with the connectors as committed (HEAD)")
    args = ap.parse_args()
    rows = []

    def emit(row):
        rows.append(row)
        print(json.dumps(row), flush=True)

    for n in args.open:
        if args.provider in ("mturk", "both"):
            mturk(n, args.workers, args.busy, args.baseline, emit)
        if args.provider in ("toloka", "both"):
            toloka(n, args.workers, args.busy, args.baseline, emit)
    print("\n| provider | open | poller | poll | new | calls | minimum | by operation |", file=sys.stderr)
    print("|---|---|---|---|---|---|---|---|", file=sys.stderr)
    for r in rows:
        ops = ", ".join(f"{k} {v}" for k, v in r["by_operation"].items())
        print(f"| {r['provider']} | {r['open']} | {r['poller']} | {r['phase']} | {r['new']} | {r['calls']} "
              f"| {r['minimum']} | {ops} |", file=sys.stderr)


if __name__ == "__main__":
    main()
