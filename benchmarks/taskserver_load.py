"""Load check of the task server: N concurrent annotators (threads, each its own httpx client and
session cookie) take pages and submit them as a browser does, against a real uvicorn + SQLite
server on 127.0.0.1. Reports submit latency percentiles (the POST of a filled form, which also
reserves the next page), page-load latency, throughput and errors.

    .venv/bin/python benchmarks/taskserver_load.py --annotators 50 --pages 3000 --seconds 30

Run by hand; figures go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx

from connectors.base import BatchSpec, Choice, Display, Page, PageItem, TextInput
from connectors.inhouse import InhouseConnector
from taskserver import team
from taskserver.db import open_database

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def pages(n: int, per_page: int) -> list[Page]:
    out = []
    for p in range(n):
        items = [PageItem(item_key=f"t{p}-{k}", widgets=[
            Display(name="prompt", label="Prompt", text=f"Prompt {p}.{k}: explain something " * 4),
            Display(name="left", label="Response A", text="A response. " * 20),
            Display(name="right", label="Response B", text="Another response. " * 20),
            Choice(name="choice", label="Which is better?", options=[("left", "A"), ("right", "B"), ("tie", "Tie")]),
            TextInput(name="why", label="Why?", required=False)]) for k in range(per_page)]
        out.append(Page(page_id=f"p{p}", idempotency_key=f"p{p}-key", items=items))
    return out


class Served:
    """`crowd serve` in its own process (so the annotators' threads do not share its interpreter)."""

    def __init__(self, db_url: str | None):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="crowd-load-")
        self.db_url = db_url or f"sqlite:///{self.dir}/serve.db"
        self.url, self.token = f"http://127.0.0.1:{port}", secrets.token_urlsafe(24)
        env = {**os.environ, "CROWD_SERVE_REQUESTER_TOKEN": self.token, "CROWD_SERVE_DATABASE_URL": self.db_url,
               "CROWD_SERVE_PORT": str(port), "CROWD_SERVE_LOGIN_ATTEMPTS_PER_MINUTE": "100000"}
        crowd = Path(sys.executable).parent / "crowd"
        self.proc = subprocess.Popen([str(crowd), "serve"], env=env, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                if httpx.get(self.url + "/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        self.db = open_database(self.db_url)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        self.db.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--annotators", type=int, default=50)
    ap.add_argument("--pages", type=int, default=3000)
    ap.add_argument("--per-page", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--think", type=float, nargs=2, default=(1.0, 3.0), metavar=("MIN", "MAX"),
                    help="Seconds an annotator spends on a page before submitting (uniform); 0 0: none, "
                         "the server's saturation point. People take 10-60 s a page.")
    ap.add_argument("--db", default=None, help="The server's database URL (default: a new SQLite file).")
    args = ap.parse_args()

    server = Served(args.db)
    try:
        print(json.dumps(run(server, args), indent=1))
    finally:
        server.stop()


def run(server: Served, args: argparse.Namespace) -> dict:
    conn = InhouseConnector("production", server.url, token=server.token)
    spec = BatchSpec(batch_id="load/s", idempotency_key="load", stage="s", kind="pairwise", title="Compare",
                     description="Pick the better response", reward=Decimal("0.10"), assignments_per_page=1)
    batch = conn.create_batch(spec)
    t0 = time.perf_counter()
    conn.publish(batch, spec, pages(args.pages, args.per_page))
    publish_s = time.perf_counter() - t0
    tokens = []
    with server.db.write() as s:
        for n in range(args.annotators):
            tokens.append(team.invite(s, f"annotator {n}", datetime.now(UTC)).token)

    submit_ms: list[float] = []
    load_ms: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + args.seconds

    def annotate(token: str) -> None:
        rng = random.Random(token)
        c = httpx.Client(base_url=server.url, follow_redirects=False, timeout=30)
        c.get(f"/join/{token}")
        csrf = CSRF.search(c.get("/work").text).group(1)
        where = c.post("/work/next", data={"csrf": csrf}).headers.get("location", "")
        time.sleep(rng.uniform(0, max(args.think)))  # annotators arrive over the first page's time
        while time.perf_counter() < stop_at and where.startswith("/work/page/"):
            a = time.perf_counter()
            html = c.get(where).text
            b = time.perf_counter()
            names = sorted(set(re.findall(r'type="radio" name="([^"]+)"', html)))
            time.sleep(rng.uniform(*args.think))
            form = {"csrf": csrf} | {n: "left" for n in names}
            d = time.perf_counter()
            r = c.post(where, data=form)
            e = time.perf_counter()
            with lock:
                load_ms.append((b - a) * 1000)
                submit_ms.append((e - d) * 1000)
                if r.status_code != 303:
                    errors.append(f"HTTP {r.status_code}")
            where = r.headers.get("location", "")
        c.close()

    threads = [threading.Thread(target=annotate, args=(t,)) for t in tokens]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    got = conn.fetch(batch, None).assignments
    result = {"annotators": args.annotators, "think_s": list(args.think),
              "pages_published": args.pages, "items_per_page": args.per_page,
              "publish_s": round(publish_s, 2), "submissions": len(submit_ms), "stored": len(got),
              "errors": len(errors), "seconds": round(elapsed, 1),
              "submissions_per_s": round(len(submit_ms) / elapsed, 1),
              "submit_ms": {"p50": round(percentile(submit_ms, 0.5), 1), "p95": round(percentile(submit_ms, 0.95), 1),
                            "p99": round(percentile(submit_ms, 0.99), 1), "max": round(max(submit_ms or [0]), 1)},
              "page_load_ms": {"p50": round(percentile(load_ms, 0.5), 1),
                               "p95": round(percentile(load_ms, 0.95), 1)},
              "mean_submit_ms": round(statistics.fmean(submit_ms), 1) if submit_ms else None}
    conn.close_client()
    return result


if __name__ == "__main__":
    main()
