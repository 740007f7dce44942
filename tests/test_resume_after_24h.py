"""A run killed between a marketplace write and the store write, resumed after the marketplace has
forgotten its idempotency token, finds what the earlier run did instead of doing it again (issue 14,
defect 2). MTurk forgets a UniqueRequestToken after 24 hours, and so does the local server on its
simulated clock; the kill is a real process exit at a crash point (``CROWD_KILL_AT``)."""

from __future__ import annotations

from collections import Counter

import pytest
from engine_helpers import (
    MAX_POLLS,
    STEP_S,
    crowd_forked,
    launch_in_process,
    market,
    poll_in_process,
    write_campaign,
)
from sqlmodel import select

from campaigns.money.reconcile import reconcile
from campaigns.store.database import open_store
from campaigns.store.models import LedgerEntry, Page, Publication

DAY_AND_AN_HOUR = 25 * 3600


def market_pages(mp) -> int:
    with mp.server.lock:
        return len(mp.server.hits) if mp.provider == "mturk" else len(mp.server.state.store["task-suites"])


@pytest.mark.parametrize("provider", ["mturk", "toloka"])
def test_launch_killed_after_publishing_and_resumed_a_day_later_publishes_each_page_once(provider, tmp_path):
    spec = write_campaign(tmp_path, provider)
    db = f"sqlite:///{tmp_path / 'crowd.db'}"
    with market(provider) as mp:
        status = crowd_forked("launch", str(spec), "--endpoint", mp.url, db=db,
                              CROWD_KILL_AT="launch.published_chunk")
        assert status == 137
        sent = market_pages(mp)
        assert sent > 0
        mp.advance(DAY_AND_AN_HOUR)
        launch_in_process(spec, db, mp.url)
        with open_store(db) as store, store.session() as s:
            pages = len(s.exec(select(Page)).all())
            refs = s.exec(select(Publication.provider_ref)).all()
        assert market_pages(mp) == pages == len(set(refs)), (market_pages(mp), pages)


def test_poll_killed_after_a_bonus_and_resumed_a_day_later_pays_it_once(tmp_path):
    spec = write_campaign(tmp_path, "mturk", features=True)
    db = f"sqlite:///{tmp_path / 'crowd.db'}"
    with market("mturk") as mp:
        launch_in_process(spec, db, mp.url)
        for _ in range(MAX_POLLS):
            mp.advance(STEP_S)
            status = crowd_forked("poll", "--endpoint", mp.url, db=db, CROWD_KILL_AT="bonus.after_call")
            if status == 137:
                break
            assert status == 0
        else:
            pytest.fail("no bonus was paid in the campaign's polls")
        mp.advance(DAY_AND_AN_HOUR)
        for _ in range(MAX_POLLS):
            if poll_in_process(db, mp.url):
                break
            mp.advance(STEP_S)
        with open_store(db) as store:
            with store.session() as s:
                booked = Counter((e.assignment_id, e.amount) for e in s.exec(
                    select(LedgerEntry).where(LedgerEntry.kind == "bonus", LedgerEntry.state == "confirmed")))
            report = reconcile(store, "engine", endpoint=mp.url)
        paid = Counter((b.assignment_id, b.amount) for b in mp.server.bonuses)
        assert paid and paid == booked, (paid, booked)
        assert report.ok, report.summary_line()
