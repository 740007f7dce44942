"""Publishing at the rate limit (issue 19, part 1): the correctness half of benchmarks/publish.py.

One AIMD limiter per account, many threads publishing into it, Toloka suites in as few requests as
one operation takes, and a publish killed at any point that resumes with one HIT per page. Real
boto3 / toloka-kit against the local servers; the assertions count calls and objects, never time.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import boto3
import pytest
from engine_helpers import REPO, START_BALANCE
from sqlmodel import select
from test_mturk_connector import one_item_pages, spec
from test_toloka_connector import pages as toloka_pages
from test_toloka_connector import spec as toloka_spec

from campaigns.engine.launch import launch
from campaigns.spec.loading import load_spec
from campaigns.store.database import open_store
from campaigns.store.models import Page, Publication
from connectors.local import FaultConfig, start_local
from connectors.mturk import MTurkConnector
from connectors.retry import AdaptiveRateLimiter, RetryPolicy, account_limiter
from connectors.toloka import TolokaConnector
from connectors.toloka import connector as toloka_connector

PATIENT = RetryPolicy(max_attempts=30, initial_s=0.0, max_s=0.01, jitter=False)


# ---------------------------------------------------------------------------- the limiter
def test_a_round_of_concurrent_throttles_halves_the_rate_once():
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    bucket = AdaptiveRateLimiter(rate=16.0, min_rate=1.0, clock=lambda: now[0], sleep=sleep)
    sent = [bucket.acquire() for _ in range(8)]  # eight requests in flight, all under generation 0
    for generation in sent:
        bucket.on_throttle(generation)
    assert bucket.rate == 8.0 and bucket.throttles == 8 and bucket.generation == 1
    bucket.on_throttle(bucket.acquire())  # sent after the cut: news, so it cuts again
    assert bucket.rate == 4.0 and bucket.generation == 2
    bucket.on_throttle()  # no generation given: every throttle cuts, as before
    assert bucket.rate == 2.0


def test_one_limiter_per_account_and_endpoint():
    a = account_limiter(("test", "http://x", "key"), 20.0)
    assert account_limiter(("test", "http://x", "key"), 20.0) is a
    assert account_limiter(("test", "http://y", "key"), 20.0) is not a
    account_limiter(("test", "http://x", "key"), 40.0)  # the latest ceiling asked for wins
    assert a.max_rate == 40.0 and a.rate == 40.0


def test_connectors_on_one_account_share_its_limiter_and_take_their_rate_from_settings(monkeypatch):
    from campaigns.store.connect import connector_for

    with start_local("mturk", workers=1, seed=1) as mp:
        one = MTurkConnector("local", mp.url)
        two = MTurkConnector("local", mp.url)
        assert one.limiter is two.limiter and (one.rate, one.max_workers) == (1000.0, 32)
        monkeypatch.setenv("CROWD_MTURK_RATE", "7.5")
        monkeypatch.setenv("CROWD_MTURK_CONCURRENCY", "3")
        configured = connector_for("mturk", "local", mp.url)
        assert (configured.rate, configured.max_workers) == (7.5, 3)
        assert configured.limiter is one.limiter and one.limiter.max_rate == 7.5
    keys = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")
    production = MTurkConnector("production", session=keys)
    assert (production.rate, production.max_workers) == (5.0, 8)


# ---------------------------------------------------------------------------- MTurk
def hits_per_page(mp) -> Counter:
    with mp.server.lock:
        return Counter((h.annotation or "").split(";")[0] for h in mp.server.hits.values())


def test_a_calm_concurrent_publish_makes_one_call_per_page():
    with start_local("mturk", workers=1, seed=1) as mp:
        conn = MTurkConnector("local", mp.url, max_workers=16, retry=PATIENT)
        s = spec("calm")
        batch = conn.create_batch(s)
        published = conn.publish(batch, s, one_item_pages(90))
        assert all(p.created for p in published) and len({p.provider_ref for p in published}) == 90
        assert conn.calls["CreateHITWithHITType"] == 90 and set(conn.calls) == {"CreateHITType",
                                                                                "CreateHITWithHITType"}
        assert conn.publish_chunk >= 16 * 8  # the engine hands it enough pages to keep 16 threads busy


def test_a_concurrent_publish_under_throttling_and_lost_responses_makes_one_hit_per_page():
    faults = FaultConfig(throttle_rate=0.15, lose_rate=0.05, seed=11)
    with start_local("mturk", workers=1, seed=1, faults=faults) as mp:
        conn = MTurkConnector("local", mp.url, max_workers=16, retry=PATIENT)
        s = spec("rough")
        batch = conn.create_batch(s)
        published = conn.publish(batch, s, one_item_pages(120))
        counts = hits_per_page(mp)
        assert sorted(counts) == sorted(f"x{i}" for i in range(120)) and set(counts.values()) == {1}
        assert {p.provider_ref for p in published} == set(mp.server.hits)
        assert conn.calls["CreateHITWithHITType"] > 120 and conn.limiter.throttles > 0  # faults did happen
        again = conn.publish(batch, s, one_item_pages(120))  # a resumed run: nothing new
        assert not any(p.created for p in again) and sum(hits_per_page(mp).values()) == 120


def _launch_child(spec_path: str, endpoint: str, env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the child ends with this process
    from campaigns.cli import app

    app(["launch", spec_path, "--endpoint", endpoint], prog_name="crowd")


def big_campaign(directory: Path, prompts: int = 40) -> Path:
    """Pairwise, 3 responses a prompt (3 pairs), 2 pairs a page: ~80 pages with golden ones."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(x) for x in (REPO / "examples/pairwise/items.jsonl").read_text().splitlines() if x][:prompts]
    rows = [{"id": r["id"], "prompt": r["prompt"], "responses": r["responses"][:3]} for r in rows]
    (directory / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    path = directory / "spec.yaml"
    path.write_text("name: burst\nprovider: mturk\nkind: pairwise\nitems: items.jsonl\npage_size: 2\n"
                    "overlap: {min: 2}\ngolden: {synthetic: true, rate: 0.3}\npricing: {reward: 0.05}\n"
                    f"budget: {{cap: 500.00}}\nexports: {{dir: {directory / 'exports'}}}\n", encoding="utf-8")
    return path


def test_a_launch_killed_during_a_concurrent_publish_resumes_with_one_hit_per_page(tmp_path):
    path = big_campaign(tmp_path)
    db = f"sqlite:///{tmp_path / 'crowd.db'}"
    # 50 ms a request keeps the publish (8 threads, ~80 pages) going long enough to be killed in it
    with start_local("mturk", workers=4, seed=7, balance=START_BALANCE,
                     faults=FaultConfig(latency_s=0.05, seed=3)) as mp:
        env = {"CROWD_DATABASE_URL": db, "CROWD_MTURK_CONCURRENCY": "8"}
        child = multiprocessing.get_context("fork").Process(target=_launch_child, args=(str(path), mp.url, env))
        child.start()
        deadline = time.monotonic() + 90
        while sum(hits_per_page(mp).values()) < 12 and child.is_alive() and time.monotonic() < deadline:
            time.sleep(0.002)
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        killed_with = sum(hits_per_page(mp).values())
        with open_store(db) as store:
            launch(load_spec(path), store, spec_text=path.read_text(encoding="utf-8"),
                   connector=MTurkConnector("local", mp.url, max_workers=8))
            with store.session() as s:
                pages = len(s.exec(select(Page)).all())
                refs = s.exec(select(Publication.provider_ref)).all()
        counts = hits_per_page(mp)
    assert child.exitcode == -signal.SIGKILL and 12 <= killed_with < pages, (killed_with, pages)
    assert sum(counts.values()) == pages == len(set(refs)) and set(counts.values()) == {1}
    assert set(refs) == set(mp.server.hits)


# ---------------------------------------------------------------------------- Toloka
def test_toloka_publishes_a_batch_in_one_operation_that_also_opens_the_pool():
    with start_local("toloka", workers=1, seed=1) as mp:
        conn = TolokaConnector("local", mp.url, retry=PATIENT)
        s = toloka_spec("one-op")
        batch = conn.create_batch(s)
        conn.publish(batch, s, toloka_pages(1))  # the project's spec follows the widgets: once a process
        before = conn.calls.copy()
        published = conn.publish(batch, s, toloka_pages(300)[1:])
        used = conn.calls - before
        assert sorted(used.items()) == [("GET /{id}/operations/{id}/log", 1), ("POST /{id}/task-suites", 1)]
        assert len(published) == 299 and all(p.created for p in published)
        with mp.server.lock:
            assert len(mp.server.state.store["task-suites"]) == 300
            assert mp.server.state.store["pools"][batch.ref]["status"] == "OPEN"


def test_toloka_splits_by_count_and_by_bytes_and_a_repeat_creates_nothing(monkeypatch):
    with start_local("toloka", workers=1, seed=1) as mp:
        conn = TolokaConnector("local", mp.url, retry=PATIENT, chunk=40)
        s = toloka_spec("split")
        batch = conn.create_batch(s)
        conn.publish(batch, s, toloka_pages(100))
        assert conn.calls["POST /{id}/task-suites"] == 3  # 40 + 40 + 20
        monkeypatch.setattr(toloka_connector, "MAX_INPUT_BYTES", 2000)  # ~10 pages of input values
        more = toloka_pages(130)[100:]
        chunks = conn._chunks(batch.ref, s, more)
        assert len(chunks) > 1 and all(len(c) < 30 for c in chunks)
        posts = conn.calls["POST /{id}/task-suites"]
        conn.publish(batch, s, more)
        assert conn.calls["POST /{id}/task-suites"] - posts == len(chunks)
        fresh = TolokaConnector("local", mp.url, retry=PATIENT, chunk=40)  # a re-run in a new process
        again = fresh.publish(batch, s, more)
        assert not any(p.created for p in again)
        with mp.server.lock:
            assert len(mp.server.state.store["task-suites"]) == 130


def test_toloka_create_whose_response_is_lost_is_not_made_twice():
    with start_local("toloka", workers=1, seed=1) as mp:
        conn = TolokaConnector("local", mp.url, retry=PATIENT)
        s = toloka_spec("lost")
        batch = conn.create_batch(s)
        mp.server.faults.lose_next("POST task-suites")
        published = conn.publish(batch, s, toloka_pages(50))
        assert conn.calls["POST /{id}/task-suites"] == 2  # the lost one, and its repeat answered "exists"
        assert {p.page_id for p in published} == {f"page{i}" for i in range(50)}
        with mp.server.lock:
            assert len(mp.server.state.store["task-suites"]) == 50


@pytest.mark.parametrize("size", [0, 1])
def test_toloka_publish_of_nothing_or_one_page(size):
    with start_local("toloka", workers=1, seed=1) as mp:
        conn = TolokaConnector("local", mp.url, retry=PATIENT)
        s = toloka_spec(f"small{size}")
        batch = conn.create_batch(s)
        assert len(conn.publish(batch, s, toloka_pages(size))) == size
