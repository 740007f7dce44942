"""Publishing N pages: crowdbridge's connectors against the plain client loops people write.

Run by hand (not a test): ``.venv/bin/python benchmarks/publish.py --pages 1000``. Every run
starts a fresh local marketplace with ``--latency`` seconds added to each request (FaultConfig),
so the round trip, not this machine, dominates. Prints one JSON line per scenario; the results
and the command go to benchmarks/RESULTS.md.

MTurk scenarios, side by side in one run:
- ``free``: the default local rate (it never binds): ``MTurkConnector.publish`` against a plain
  sequential boto3 ``create_hit_with_hit_type`` loop; ``ratio`` = loop time / our time.
- ``bound``: ``--rate`` requests/s set on the connector; ``vs_bound`` = our time / (N / rate).
- ``throttled``: ``--throttle`` of the requests answered with a throttling error and
  ``--lose`` carried out with the response lost; HITs per page on the server, ours against the
  plain loop (botocore's own retries, no UniqueRequestToken: what a script written in a hurry does).
Toloka: ``TolokaConnector.publish`` (requests per operation and in all, against the minimum for
an idempotent upload: one POST /task-suites per 10,000 suites or 1 MB of input values, plus its
operation log) against a plain toloka-kit loop of ``create_task_suite`` (toloka-kit's defaults:
three requests a page).
``--only engine``: ``launch`` of a synthetic pairwise campaign end to end (planning, store writes,
``publish_stage`` chunks) on both providers, MTurk also with one thread.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import boto3  # noqa: E402
import toloka.client as tc  # noqa: E402

from connectors.base import BatchSpec, Choice, Display, Page, PageItem  # noqa: E402
from connectors.local import FaultConfig, start_local  # noqa: E402
from connectors.mturk import MTurkConnector  # noqa: E402
from connectors.mturk.connector import annotation  # noqa: E402
from connectors.retry import RetryPolicy  # noqa: E402
from connectors.toloka import TolokaConnector, forms  # noqa: E402


def pages(n: int, prefix: str = "p", per_page: int = 2) -> list[Page]:
    choice = Choice(name="label", label="Which is better?", options=[("a", "A"), ("b", "B")])
    return [Page(page_id=f"{prefix}{i}", idempotency_key=f"{prefix}-key-{i}", items=[
        PageItem(item_key=f"{prefix}{i}x{k}", widgets=[Display(name="text", text=f"pair {i}.{k}: left or right?"),
                                                        choice]) for k in range(per_page)]) for i in range(n)]


def spec(batch_id: str) -> BatchSpec:
    return BatchSpec(batch_id=batch_id, idempotency_key=batch_id, stage="s", kind="pairwise",
                     title=f"Compare ({batch_id})", description="Pick the better one", reward=Decimal("0.05"),
                     assignments_per_page=3, lifetime_s=7 * 86400, real_per_page=2)


def per_page(notes: list[str | None], n: int, prefix: str) -> dict[str, int]:
    """HITs of the ``n`` pages, duplicates (HITs beyond the first for a page) and lost pages (none)."""
    counts = Counter((note or "").split(";")[0] for note in notes)
    wanted = [f"{prefix}{i}" for i in range(n)]
    return {"hits": sum(counts[p] for p in wanted), "duplicates": sum(max(0, counts[p] - 1) for p in wanted),
            "lost": sum(counts[p] == 0 for p in wanted)}


def server_notes(mp) -> list[str | None]:
    with mp.server.lock:
        return [h.annotation for h in mp.server.hits.values()]


def mturk_ours(n: int, faults: FaultConfig, rate: float | None = None) -> dict:
    with start_local("mturk", workers=1, seed=1, faults=faults) as mp:
        conn = MTurkConnector("local", mp.url, rate=rate, retry=RetryPolicy(max_attempts=12, initial_s=0.05))
        s = spec(f"ours-{rate}")
        batch = conn.create_batch(s)
        todo = pages(n)
        conn.publish(batch, s, pages(conn.max_workers, prefix="warm"))  # threads and connections up
        start = time.perf_counter()
        conn.publish(batch, s, todo)
        seconds = time.perf_counter() - start
        out = {"seconds": round(seconds, 2), "rate": conn.rate, "threads": conn.max_workers,
               "calls": conn.calls["CreateHITWithHITType"], "throttled": conn.limiter.throttles,
               **per_page(server_notes(mp), n, "p")}
        # resumed publish (as after a kill): every page is found, nothing is created again
        again = conn.publish(batch, s, todo)
        out["repeat_created"] = sum(p.created for p in again)
        out["after_repeat"] = per_page(server_notes(mp), n, "p")["hits"]
        return out


def mturk_loop(n: int, faults: FaultConfig, spec_: BatchSpec) -> dict:
    """The plain loop: one boto3 client, defaults (botocore's legacy retries), no token."""
    with start_local("mturk", workers=1, seed=1, faults=faults) as mp:
        client = boto3.client("mturk", endpoint_url=mp.url, region_name="us-east-1",
                              aws_access_key_id="x", aws_secret_access_key="y")
        hit_type = client.create_hit_type(Title=spec_.title, Description=spec_.description, Reward="0.05",
                                          AssignmentDurationInSeconds=600)["HITTypeId"]
        question = MTurkConnector._question
        failed = 0
        start = time.perf_counter()
        for page in pages(n):
            try:
                client.create_hit_with_hit_type(HITTypeId=hit_type, MaxAssignments=3, LifetimeInSeconds=86400,
                                                Question=question(page, spec_), RequesterAnnotation=annotation(page))
            except Exception:  # noqa: BLE001 - the loop carries on, as such scripts do
                failed += 1
        seconds = time.perf_counter() - start
        return {"seconds": round(seconds, 2), "failed_calls": failed, **per_page(server_notes(mp), n, "p")}


def toloka_ours(n: int, faults: FaultConfig) -> dict:
    with start_local("toloka", workers=1, seed=1, faults=faults) as mp:
        conn = TolokaConnector("local", mp.url, retry=RetryPolicy(max_attempts=12, initial_s=0.05))
        s = spec("toloka")
        batch = conn.create_batch(s)
        setup = sum(conn.calls.values())
        todo = pages(n)
        conn.publish(batch, s, pages(1, prefix="warm"))  # the once-per-process project spec sync
        before = conn.calls.copy()
        start = time.perf_counter()
        conn.publish(batch, s, todo)
        seconds = time.perf_counter() - start
        used = conn.calls - before
        suite_ops = [k for k in used if "task-suites" in k or "operations" in k]
        with mp.server.lock:
            suites = len(mp.server.state.store["task-suites"]) - 1
            pool = mp.server.state.store["pools"][batch.ref]["status"]
        minimum = 2 * math.ceil(n / 10_000)  # POST /task-suites + its operation log (local ops finish at once)
        again = conn.publish(batch, s, todo)
        return {"seconds": round(seconds, 2), "requests": sum(used.values()), "minimum": minimum,
                "vs_minimum": round(sum(used.values()) / minimum, 2),
                "suite_requests": {k: used[k] for k in suite_ops}, "setup_requests": setup,
                "first_publish_extra": sum(before.values()) - setup - 2, "suites": suites, "pool": pool,
                "repeat_created": sum(p.created for p in again)}


class CountingTolokaClient(tc.TolokaClient):
    requests = 0

    def _raw_request(self, method, path, **kwargs):  # noqa: ANN001, ANN202 - toloka-kit's signature
        self.requests += 1
        return super()._raw_request(method, path, **kwargs)


def toloka_loop(n: int, faults: FaultConfig) -> dict:
    """A plain toloka-kit loop: one ``create_task_suite`` per page (toloka-kit's defaults: an async
    operation it waits for, then reads back), into a pool opened first."""
    with start_local("toloka", workers=1, seed=1, faults=faults) as mp:
        conn = TolokaConnector("local", mp.url)
        s = spec("loop")
        batch = conn.create_batch(s)
        conn.publish(batch, s, pages(1, prefix="warm"))  # project spec in place, pool open
        client = CountingTolokaClient("local", url=mp.url)
        start = time.perf_counter()
        for page in pages(n):
            client.create_task_suite(tc.TaskSuite(pool_id=batch.ref, overlap=3, tasks=[
                tc.Task(input_values=forms.input_values(item, page.page_id)) for item in page.items]))
        seconds = time.perf_counter() - start
        with mp.server.lock:
            suites = len(mp.server.state.store["task-suites"]) - 1
        return {"seconds": round(seconds, 2), "requests": client.requests, "suites": suites}


def engine_launch(provider: str, n: int, faults: FaultConfig, sequential: bool = False) -> dict:
    """``launch`` (plan, then ``publish_stage``) of a synthetic pairwise campaign of about ``n``
    pages: 4 responses a prompt are 6 pairs, 2 pairs a page, no golden pages."""
    from campaigns.engine.launch import launch
    from campaigns.spec.loading import load_spec
    from campaigns.store.database import open_store

    work = Path(tempfile.mkdtemp())
    prompts = math.ceil(n / 3)
    rows = [{"id": f"q{i}", "prompt": f"Prompt {i}?",
             "responses": [{"id": f"q{i}-r{k}", "text": f"Answer {k} to prompt {i}."} for k in range(4)]}
            for i in range(prompts)]
    (work / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    path = work / "spec.yaml"
    path.write_text(f"name: bench\nprovider: {provider}\nkind: pairwise\nitems: items.jsonl\npage_size: 2\n"
                    "overlap: {min: 2}\npricing: {reward: 0.05}\nbudget: {cap: 5000.00}\n"
                    f"exports: {{dir: {work / 'exports'}}}\n", encoding="utf-8")
    with start_local(provider, workers=1, seed=1, faults=faults, balance=Decimal("100000")) as mp:
        options = {"max_workers": 1} if sequential else {}
        conn = (MTurkConnector if provider == "mturk" else TolokaConnector)("local", mp.url, **options)
        with open_store(f"sqlite:///{work / 'crowd.db'}") as store:
            start = time.perf_counter()
            report = launch(load_spec(path), store, spec_text=path.read_text(encoding="utf-8"), connector=conn)
            seconds = time.perf_counter() - start
        return {"seconds": round(seconds, 2), "pages": report.published, "requests": sum(conn.calls.values()),
                "calls": dict(sorted(conn.calls.items()))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=0.05, help="seconds added to every request")
    ap.add_argument("--rate", type=float, default=50.0, help="requests/s for the scenario where the limit binds")
    ap.add_argument("--throttle", type=float, default=0.10)
    ap.add_argument("--lose", type=float, default=0.01, help="share of requests carried out, response lost")
    ap.add_argument("--only", choices=["mturk", "toloka", "engine"], default=None)
    args = ap.parse_args()
    n = args.pages
    calm = FaultConfig(latency_s=args.latency, seed=1)
    rough = FaultConfig(latency_s=args.latency, throttle_rate=args.throttle, lose_rate=args.lose, seed=1)
    if args.only in (None, "mturk"):
        ours = mturk_ours(n, calm)
        loop = mturk_loop(n, calm, spec("loop"))
        print(json.dumps({"mturk": "free", "ours": ours, "loop": loop,
                          "ratio": round(loop["seconds"] / ours["seconds"], 2)}), flush=True)
        bound = mturk_ours(n, calm, rate=args.rate)
        print(json.dumps({"mturk": "bound", "ours": bound, "n_over_rate_s": round(n / args.rate, 2),
                          "vs_bound": round(bound["seconds"] / (n / args.rate), 3)}), flush=True)
        ours = mturk_ours(n, rough)
        loop = mturk_loop(n, rough, spec("loop"))
        print(json.dumps({"mturk": "throttled", "throttle": args.throttle, "lose": args.lose, "ours": ours,
                          "loop": loop, "ratio": round(loop["seconds"] / ours["seconds"], 2)}), flush=True)
    if args.only == "engine":  # `launch` end to end: planning, store writes and the publish
        for provider in ("mturk", "toloka"):
            ours = engine_launch(provider, n, calm)
            one = engine_launch(provider, n, calm, sequential=True) if provider == "mturk" else None
            print(json.dumps({"engine": provider, "ours": ours, "one_thread": one}), flush=True)
        return
    if args.only != "mturk":
        ours = toloka_ours(n, calm)
        loop = toloka_loop(n, calm)
        print(json.dumps({"toloka": "calm", "ours": ours, "loop": loop,
                          "ratio": round(loop["seconds"] / ours["seconds"], 2)}), flush=True)
        ours = toloka_ours(n, rough)
        print(json.dumps({"toloka": "throttled", "throttle": args.throttle, "lose": args.lose, "ours": ours}),
              flush=True)


if __name__ == "__main__":
    main()
