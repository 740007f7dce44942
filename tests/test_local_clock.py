"""The local marketplaces' clock starts at the wall clock: third-party clients compute times from
their own clock (``ExpireAt=now``, ``submitted_gte=now - 1h``, toloka.streaming's
``created_lte=now - lag``), so a server living in 2024 answered them wrongly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mturk_helpers import ONE_TRY, client, html_question

from connectors.local import start_local
from connectors.local.clock import SimClock


def test_a_new_clock_reads_the_wall_clock_and_moves_only_when_told():
    clock = SimClock()
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)
    before = clock.now()
    clock.advance(3600)
    assert clock.now() - before == timedelta(hours=1)  # speed 0: only advance moves it


def test_an_explicit_start_is_kept():
    start = datetime(2030, 1, 1, tzinfo=UTC)
    assert SimClock(start=start).now() == start


def test_a_hit_made_now_was_created_now_by_the_clients_clock():
    with start_local("mturk", workers=2) as mp:
        mturk = client(mp.url, retries=ONE_TRY)
        hit = mturk.create_hit(Title="t", Description="d", Reward="0.01", MaxAssignments=1,
                               LifetimeInSeconds=3600, AssignmentDurationInSeconds=60,
                               Question=_question())["HIT"]
        now = datetime.now(UTC)
        assert abs(hit["CreationTime"] - now) < timedelta(seconds=5)
        assert hit["Expiration"] - now > timedelta(minutes=55)  # not expired for a wall-clock client


def _question() -> str:
    form = ("<!DOCTYPE html><html><body><form name='mturk_form' method='post' action='/mturk/externalSubmit'>"
            "<input type='hidden' name='assignmentId' value=''/><textarea name='note'></textarea></form></body></html>")
    return html_question(form, frame_height=300)
