"""Pollers sharing a big stage through shards (issue 19, part 4).

A stage of more than ``CROWD_POLL_SHARD_PAGES`` pages is split into shards (``page.id % n``), each
with its own cursor and lease, so several pollers work one stage at once. Here the setting is 2
pages, so the small test campaign (12 pairs, ~9 pages) has several shards. On PostgreSQL: four
pollers at once ingest every assignment once and book each reward once; a poller
killed inside a shard leaves its lease, which the next poll takes over; a shard held by another
poller is skipped while the others advance their own cursors.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from engine_helpers import (
    MAX_POLLS,
    STEP_S,
    check_consistent,
    crowd_forked,
    launch_in_process,
    market,
    poll_in_process,
    write_campaign,
)
from sqlalchemy import update
from sqlmodel import select

from campaigns.engine.poll import poll
from campaigns.stages.shards import MAX_SHARDS, shard_count, stage_shards
from campaigns.store.database import open_store
from campaigns.store.models import Assignment, Page, PollCursor, Publication, Stage, utcnow
from connectors.factory import make_connector

SHARD_PAGES = "2"


def test_shard_count_follows_the_pages_in_powers_of_two():
    assert [shard_count(n, 1250) for n in (0, 1, 1250, 1251, 3750, 5000, 10_000, 10_001)] == [1, 1, 1, 2, 4, 4, 8, 16]
    assert shard_count(10**7, 1250) == MAX_SHARDS


def _shard_rows(db: str) -> list[PollCursor]:
    with open_store(db) as store, store.session() as s:
        return list(s.exec(select(PollCursor).order_by(PollCursor.shard)).all())


def _page_of_ref(db: str) -> dict[str, int]:
    with open_store(db) as store, store.session() as s:
        return dict(s.exec(select(Publication.provider_ref, Publication.page_id)).all())


def _assert_cursors_follow_their_own_pages(db: str) -> None:
    rows = _shard_rows(db)
    n = rows[0].shards
    assert n > 1 and [r.shard for r in rows] == list(range(n)) and {r.shards for r in rows} == {n}
    page_of = _page_of_ref(db)
    for r in rows:
        if r.cursor:
            hits = json.loads(r.cursor)["open"]
            assert all(page_of[h] % n == r.shard for h in hits), f"shard {r.shard} follows another shard's HIT"


@pytest.fixture
def pg_db(pg_url):
    import pg

    url = pg.create_database(pg_url)
    try:
        yield url
    finally:
        pg.drop_database(url)


def _poll_at_once(db: str, url: str, pollers: int) -> list:
    """``pollers`` pollers (threads, each with its own store connection and connector) started together."""
    gate = threading.Barrier(pollers)

    def one(_: int):
        with open_store(db) as store:
            conn = make_connector("mturk", "local", url)
            gate.wait(timeout=60)
            return poll(store, endpoint=url, connector=conn)

    with ThreadPoolExecutor(pollers) as pool:
        return list(pool.map(one, range(pollers)))


def test_four_pollers_on_one_sharded_stage_ingest_and_pay_each_assignment_once(pg_db, tmp_path, monkeypatch):
    monkeypatch.setenv("CROWD_POLL_SHARD_PAGES", SHARD_PAGES)
    spec = write_campaign(tmp_path / "c", "mturk", items=12, strict=False)
    new = approved = 0
    with market("mturk") as mp:
        launch_in_process(spec, pg_db, mp.url)
        for _ in range(MAX_POLLS):
            mp.advance(STEP_S)
            reports = _poll_at_once(pg_db, mp.url, 4)
            for r in reports:
                for st in r.stages:
                    new += st.new
                    approved += st.approved
            if any(r.all_done for r in reports):
                break
        else:
            raise AssertionError(f"the campaign did not finish in {MAX_POLLS} rounds")
        state = check_consistent(pg_db, mp)
        approvals_called = mp.calls["ApproveAssignment"]
    stored = state["store"]["assignments"]
    assert state["store"]["campaigns"] == [("engine", "done")]
    assert new == len(stored) > 0, "each assignment is new to exactly one poller"
    assert approved == sum(a[3] == "approved" for a in stored) == approvals_called
    assert _shard_rows(pg_db)[0].shards >= 4
    _assert_cursors_follow_their_own_pages(pg_db)


def test_a_killed_pollers_shard_is_taken_over_and_paid_once(pg_db, tmp_path, monkeypatch):
    monkeypatch.setenv("CROWD_POLL_SHARD_PAGES", SHARD_PAGES)
    spec = write_campaign(tmp_path / "c", "mturk", items=12, strict=False)
    with market("mturk") as mp:
        launch_in_process(spec, pg_db, mp.url)
        mp.advance(STEP_S * 3)
        # killed inside the first shard it took, after recording its first decision
        assert crowd_forked("poll", "--endpoint", mp.url, db=pg_db, CROWD_KILL_AT="review.before_call",
                            CROWD_POLL_SHARD_PAGES=SHARD_PAGES) == 137
        held = [r for r in _shard_rows(pg_db) if r.lease_owner]
        assert len(held) == 1 and held[0].shard != 0 and held[0].lease_until > utcnow()
        with open_store(pg_db) as store, store.session() as s:
            mine = select(Assignment.review).join(Page, Page.id == Assignment.page_id).where(
                Page.id % held[0].shards == held[0].shard)
            assert "approving" in s.exec(mine).all() or "rejecting" in s.exec(mine).all()
        for _ in range(MAX_POLLS):
            if poll_in_process(pg_db, mp.url):
                break
            mp.advance(STEP_S)
        else:
            raise AssertionError(f"the campaign did not finish in {MAX_POLLS} polls")
        assert all(r.lease_owner is None for r in _shard_rows(pg_db))
        state = check_consistent(pg_db, mp)
        assert mp.calls["ApproveAssignment"] == sum(a[3] == "approved" for a in state["store"]["assignments"])
    _assert_cursors_follow_their_own_pages(pg_db)


def test_a_held_shard_is_skipped_while_the_others_advance(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CROWD_POLL_SHARD_PAGES", SHARD_PAGES)
    spec = write_campaign(tmp_path / "c", "mturk", items=12, strict=False)
    with market("mturk") as mp, open_store(db_url) as store:
        launch_in_process(spec, db_url, mp.url)
        with store.session() as s:
            stage_id = s.exec(select(Stage.id)).one()
        shards = stage_shards(store, stage_id)
        other = shards[1]  # neither the first walked nor the stage-wide one
        assert store.acquire_lease(stage_id, "elsewhere:1:x", 600, shard=other.index)
        mp.advance(STEP_S * 3)
        report = poll(store, endpoint=mp.url)
        assert report.stages[0].shards == len(shards) - 1 and report.stages[0].skipped is None
        cursors = {r.shard: r.cursor for r in _shard_rows(db_url)}
        assert cursors[other.index] is None and all(c for k, c in cursors.items() if k != other.index)
        with store.session() as s:
            pages = dict(s.exec(select(Assignment.assignment_id, Assignment.page_id)).all())
        assert pages and all(p % other.count != other.index for p in pages.values())
        on_market = {a.assignment_id: a.hit_id for a in mp.server.assignments.values()
                     if a.status in ("Submitted", "Approved", "Rejected")}
        page_of = _page_of_ref(db_url)
        waiting = [a for a, hit in on_market.items() if page_of[hit] % other.count == other.index]
        assert waiting, "the held shard has answers the poll left alone"

        with store.write() as s:  # the other poller's lease runs out
            s.execute(update(PollCursor).where(PollCursor.shard == other.index)
                      .values(lease_until=utcnow() - timedelta(seconds=1)))
        report = poll(store, endpoint=mp.url)
        with store.session() as s:
            stored = set(s.exec(select(Assignment.assignment_id)).all())
        assert set(waiting) <= stored and report.stages[0].new >= len(waiting)
    _assert_cursors_follow_their_own_pages(db_url)


def test_a_finished_report_older_than_an_extension_leaves_the_page_open(tmp_path):
    """Between a shard's fetch and its pages step another poller may extend a page the fetch saw
    finished: only pages still as they were before the fetch are marked done from it."""
    from campaigns.engine.cursor import open_pages
    from campaigns.engine.steps.pages import mark_finished

    db = f"sqlite:///{tmp_path / 'crowd.db'}"
    spec = write_campaign(tmp_path / "c", "mturk", items=6, strict=False)
    with market("mturk") as mp, open_store(db) as store:
        launch_in_process(spec, db, mp.url)
        with store.session() as s:
            stage = s.exec(select(Stage)).one()
        before = open_pages(store, stage)
        extended, kept, extending = sorted(before)[:3]
        with store.write() as s:
            for ref, change in ((extended, {"assignments": before[extended].assignments + 1}),
                                (extending, {"status": "extending"})):
                s.execute(update(Page).where(Page.id == before[ref].page_id).values(**change))
        mark_finished(store, [extended, kept, extending], before)
        with store.session() as s:
            status = dict(s.exec(select(Page.id, Page.status)).all())
    assert status[before[kept].page_id] == "done"
    assert status[before[extended].page_id] == "published" and status[before[extending].page_id] == "extending"


def test_an_idle_poll_of_a_sharded_stage_lists_the_account_once(tmp_path, monkeypatch):
    """ListHITs is account-wide: the shards of a stage share one pass over it (``fetch_round``),
    so an idle poll makes ceil(HITs / 100) + 1 calls however many shards the stage has."""
    monkeypatch.setenv("CROWD_POLL_SHARD_PAGES", SHARD_PAGES)
    db = f"sqlite:///{tmp_path / 'crowd.db'}"
    spec = write_campaign(tmp_path / "c", "mturk", items=12, strict=False)
    with market("mturk") as mp, open_store(db) as store:
        launch_in_process(spec, db, mp.url)
        conn = make_connector("mturk", "local", mp.url)
        poll(store, endpoint=mp.url, connector=conn)  # each shard's cursor now follows its HITs
        with store.session() as s:
            stage_id = s.exec(select(Stage.id)).one()
        assert len(stage_shards(store, stage_id)) >= 4
        report = poll(store, endpoint=mp.url, connector=conn)  # nobody has worked: nothing new
        hits = len(mp.server.hits)
    assert report.stages[0].new == 0
    assert set(report.api_calls) == {"ListHITs"}
    assert report.api_calls["ListHITs"] <= -(-hits // 100) + 1  # one listing each would be >= 4 calls
