"""Polls at the pagination minimum (issue 19, part 2), with real boto3 / toloka-kit against the
local servers: an idle MTurk poll is ceil(open HITs / 100) + 1 calls at most, ListHITs pages only,
and a busy one adds one ListAssignmentsForHIT per HIT whose answers changed; an idle Toloka poll is
at most 2 calls. Across polls, restarts (a new connector with the stored cursor) and answers
submitted while a poll runs, every answer arrives exactly once."""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal

import pytest
from test_mturk_connector import FAST, one_item_pages, spec

from connectors.base import BatchSpec, Choice, Display, Page, PageItem
from connectors.local import start_local
from connectors.mturk import MTurkConnector
from connectors.toloka import TolokaConnector

OPEN = 250


def listed_answers(client, refs) -> dict[str, tuple[str, str]]:
    """What MTurk holds, read with boto3's own paginator: assignment id -> (HIT id, status)."""
    out = {}
    for ref in refs:
        for page in client.get_paginator("list_assignments_for_hit").paginate(
                HITId=ref, AssignmentStatuses=["Submitted", "Approved", "Rejected"]):
            out.update({a["AssignmentId"]: (ref, a["AssignmentStatus"]) for a in page["Assignments"]})
    return out


def cost(conn, before: Counter) -> Counter:
    return conn.calls - before


@pytest.fixture(scope="module")
def mturk():
    """250 open one-answer HITs of ours, plus 20 of another campaign of the same HIT type."""
    with start_local("mturk", workers=8, seed=11) as mp:
        conn = MTurkConnector("local", mp.url, retry=FAST)
        s = spec("poll-calls", assignments=2)
        batch = conn.create_batch(s)
        theirs = MTurkConnector("local", mp.url, retry=FAST)
        other = [p.provider_ref for p in theirs.publish(batch, s, one_item_pages(20, prefix="o"))]
        refs = [p.provider_ref for p in conn.publish(batch, s, one_item_pages(OPEN))]
        yield mp, batch, refs, other


def test_idle_mturk_poll_is_listhits_pages_only(mturk):
    mp, batch, refs, other = mturk
    fresh = MTurkConnector("local", mp.url, retry=FAST)  # a poller with nothing in memory
    first = fresh.fetch(batch, None, refs)
    assert first.assignments == [] and first.finished_pages == []
    # nothing answered yet: the counts say so, no HIT's assignments are listed
    assert set(fresh.calls) == {"ListHITs"} and fresh.calls["ListHITs"] <= math.ceil((OPEN + 20) / 100) + 1
    for _ in range(2):
        restarted = MTurkConnector("local", mp.url, retry=FAST)
        idle = restarted.fetch(batch, first.cursor, refs)
        assert idle.assignments == [] and idle.cursor == first.cursor
        assert dict(restarted.calls) == {"ListHITs": restarted.calls["ListHITs"]}
        assert restarted.calls["ListHITs"] <= math.ceil((OPEN + len(other)) / 100) + 1


def test_busy_mturk_poll_reads_only_the_hits_that_changed_and_never_another_campaigns(mturk):
    mp, batch, refs, other = mturk
    conn = MTurkConnector("local", mp.url, retry=FAST)
    cursor = conn.fetch(batch, None, refs).cursor
    got: dict[str, str] = {}
    busy_polls = 0
    for _ in range(30):
        before_answers = listed_answers(conn.client, refs)
        mp.advance(120)
        now_answers = listed_answers(conn.client, refs)  # the crowd stands still until the next advance
        changed = {hit for aid, (hit, status) in now_answers.items() if before_answers.get(aid) != (hit, status)}
        before = conn.calls.copy()
        result = conn.fetch(batch, cursor, refs)
        spent = cost(conn, before)
        cursor = result.cursor
        assert spent["ListAssignmentsForHIT"] == len(changed)  # one call per changed HIT, none for the rest
        assert spent["ListHITs"] <= math.ceil((OPEN + len(other)) / 100) + 1
        assert set(spent) <= {"ListHITs", "ListAssignmentsForHIT"}
        assert {a.assignment_id for a in result.assignments} == set(now_answers) - set(before_answers)
        busy_polls += 0 < len(changed) < OPEN
        for a in result.assignments:
            assert a.assignment_id not in got and a.page_ref in refs
            got[a.assignment_id] = a.page_ref
        if len(got) == 2 * OPEN:
            break
    assert busy_polls, "some polls found some HITs changed and others not"
    assert got == {aid: hit for aid, (hit, _) in listed_answers(conn.client, refs).items()}
    assert not set(got.values()) & set(other)  # ListHITs shows the whole account; only ours are read
    final = conn.fetch(batch, cursor, refs)
    assert sorted(final.finished_pages) == sorted(refs) and final.assignments == []


def answers_during_the_poll(conn, mp, seconds: float):
    """Let the crowd work right after ``fetch`` took its ListHITs snapshot, before it lists any HIT."""
    listing = conn._listing

    def then_work(*args):
        found = listing(*args)
        mp.advance(seconds)
        return found

    conn._listing = then_work
    return conn


def test_no_mturk_answer_is_lost_or_repeated_across_restarts_and_answers_arriving_mid_poll():
    with start_local("mturk", workers=10, seed=4) as mp:
        s = spec("restarts", assignments=3)
        first = MTurkConnector("local", mp.url, retry=FAST)
        batch = first.create_batch(s)
        refs = [p.provider_ref for p in first.publish(batch, s, one_item_pages(60))]
        cursor, got = None, []
        for n in range(40):
            conn = MTurkConnector("local", mp.url, retry=FAST)  # every poll a new process: the cursor is all it has
            if n % 2:
                answers_during_the_poll(conn, mp, 300)
            else:
                mp.advance(300)
            result = conn.fetch(batch, cursor, refs)
            got += result.assignments
            cursor = result.cursor
            if len(got) >= 3 * len(refs) and n % 2 == 0:
                break
        truth = listed_answers(first.client, refs)
        assert len(truth) == 3 * len(refs)
        assert Counter(a.assignment_id for a in got) == Counter(list(truth))  # each exactly once
        assert all(a.page_id and a.answers and a.parse_error is None for a in got)


def test_approved_and_rejected_states_are_read_again_once():
    with start_local("mturk", workers=6, seed=9) as mp:
        conn = MTurkConnector("local", mp.url, retry=FAST)
        s = spec("states", assignments=2)
        batch = conn.create_batch(s)
        refs = [p.provider_ref for p in conn.publish(batch, s, one_item_pages(8))]
        mp.advance(6 * 3600)
        first = conn.fetch(batch, None, refs)
        assert len(first.assignments) == 16 and {a.status for a in first.assignments} == {"submitted"}
        approve = first.assignments[0]
        reject = next(a for a in first.assignments if a.page_ref != approve.page_ref)
        conn.approve(approve.assignment_id)
        conn.reject(reject.assignment_id, "no")
        before = conn.calls.copy()
        again = conn.fetch(batch, first.cursor, refs)
        assert cost(conn, before)["ListAssignmentsForHIT"] == 2  # only the two HITs whose counts moved
        assert {(a.assignment_id, a.status) for a in again.assignments} == {
            (approve.assignment_id, "approved"), (reject.assignment_id, "rejected")}
        before = conn.calls.copy()
        assert conn.fetch(batch, again.cursor, refs).assignments == []
        assert cost(conn, before)["ListAssignmentsForHIT"] == 0


def test_an_old_cursor_reads_on_without_repeating_an_answer():
    """A cursor written before counts were kept (v1: ids only) lists each HIT once more and returns
    only what it had not read."""
    import json

    with start_local("mturk", workers=6, seed=8) as mp:
        conn = MTurkConnector("local", mp.url, retry=FAST)
        s = spec("v1", assignments=2)
        batch = conn.create_batch(s)
        refs = [p.provider_ref for p in conn.publish(batch, s, one_item_pages(6))]
        mp.advance(400)
        first = conn.fetch(batch, None, refs)
        state = json.loads(first.cursor)
        v1 = {"v": 1, "open": {h: {"a": None, "m": [], "s": sorted(e["s"])} for h, e in state["open"].items()}}
        mp.advance(6 * 3600)
        later = MTurkConnector("local", mp.url, retry=FAST).fetch(batch, json.dumps(v1), refs)
        ids = [a.assignment_id for a in first.assignments + later.assignments]
        assert len(ids) == len(set(ids)) == 2 * len(refs)


def test_engine_poll_reports_its_calls_and_an_idle_one_is_the_minimum(tmp_path):
    """``crowd poll --json`` reports api calls per operation (PollReport.api_calls). The poll after
    one that approved answers reads those HITs again (their states changed); the next, with nothing
    new, makes ListHITs calls only."""
    from engine_helpers import launch_in_process, write_campaign

    from campaigns.engine.poll import poll
    from campaigns.store.database import open_store

    spec_path = write_campaign(tmp_path / "c", "mturk")
    db = f"sqlite:///{tmp_path / 'crowd.db'}"
    with start_local("mturk", workers=6, seed=7) as mp:
        launch_in_process(spec_path, db, mp.url)
        mp.advance(60)
        with open_store(db) as store:
            def one_poll():  # a new connector each time, as a new ``crowd poll`` process has
                return poll(store, endpoint=mp.url, connector=MTurkConnector("local", mp.url, retry=FAST))

            busy = one_poll()
            reread = one_poll()
            idle = one_poll()
    approved = sum(s.approved + s.rejected for s in busy.stages)
    assert busy.api_calls["ListAssignmentsForHIT"] >= 1 and approved, busy.api_calls
    assert 1 <= reread.api_calls.get("ListAssignmentsForHIT", 0) <= approved, reread.api_calls
    assert not any(s.new for s in reread.stages + idle.stages)
    assert idle.stages and set(idle.api_calls) == {"ListHITs"} and idle.api_calls["ListHITs"] <= 2, idle.api_calls


# --------------------------------------------------------------------------- Toloka
def oracle(task, worker, rng):
    return {"label": "pos"}


def toloka_spec(batch_id: str, overlap: int = 2) -> BatchSpec:
    return BatchSpec(batch_id=batch_id, idempotency_key=f"key-{batch_id}", stage="label", kind="classify",
                     title="Sentiment", description="Is it positive?", reward=Decimal("0.04"),
                     assignments_per_page=overlap, real_per_page=1)


def toloka_pages(n: int) -> list[Page]:
    choice = Choice(name="label", label="Sentiment", options=[("pos", "Positive"), ("neg", "Negative")])
    return [Page(page_id=f"page{p}", idempotency_key=f"pk{p}", items=[
        PageItem(item_key=f"i{p}", widgets=[Display(name="text", text=f"item {p}"), choice])]) for p in range(n)]


def toloka_truth(conn: TolokaConnector, pool_id: str) -> set[str]:
    return {a.id for a in conn.client.get_assignments(pool_id=pool_id, status=["SUBMITTED", "ACCEPTED", "REJECTED"])}


def test_toloka_idle_poll_is_at_most_two_calls_and_nothing_is_lost_or_repeated():
    with start_local("toloka", workers=10, seed=5, oracle=oracle) as mp:
        conn = TolokaConnector("local", mp.url, retry=FAST)
        s = toloka_spec("idle")
        batch = conn.create_batch(s)
        refs = [p.provider_ref for p in conn.publish(batch, s, toloka_pages(OPEN))]
        first = TolokaConnector("local", mp.url, retry=FAST)
        result = first.fetch(batch, None, refs)
        cursor, got = result.cursor, list(result.assignments)
        for _ in range(2):  # idle: nothing new, from a restarted poller
            idle_conn = TolokaConnector("local", mp.url, retry=FAST)
            idle = idle_conn.fetch(batch, cursor, refs)
            assert idle.assignments == [] and sum(idle_conn.calls.values()) <= 2, idle_conn.calls
            cursor = idle.cursor
        waiting = set(refs)
        for n in range(40):
            poller = TolokaConnector("local", mp.url, retry=FAST)
            if n % 2:  # the crowd answers right after the poll read the assignments
                read = poller._read_since

                def then_work(*args, read=read):
                    found = read(*args)
                    mp.advance(600)
                    return found

                poller._read_since = then_work
            else:
                mp.advance(600)
            result = poller.fetch(batch, cursor, sorted(waiting))
            reads = sum(n for op, n in poller.calls.items() if op.startswith("GET ") and op.endswith("/assignments"))
            assert reads <= 1 + len(result.assignments) // poller.fetch_limit  # one page per fetch_limit answers
            suites = sum(n for op, n in poller.calls.items() if "/task-suites" in op)
            assert suites <= 1, poller.calls  # no new pages: at most one call confirms the finished ones
            got += result.assignments
            cursor = result.cursor
            waiting -= set(result.finished_pages)
            if not waiting:
                break
        assert not waiting
        assert Counter(a.assignment_id for a in got) == Counter(toloka_truth(conn, batch.ref))
        assert len(got) == 2 * OPEN
        done = TolokaConnector("local", mp.url, retry=FAST)
        assert done.fetch(batch, cursor, []).assignments == [] and sum(done.calls.values()) == 0


def test_a_toloka_page_reopened_after_it_finished_is_followed_again():
    """An extension reopens a finished suite the cursor no longer follows: one GET puts it back,
    its new answer arrives once, and it finishes again."""
    with start_local("toloka", workers=10, seed=6, oracle=oracle) as mp:
        conn = TolokaConnector("local", mp.url, retry=FAST)
        s = toloka_spec("reopen", overlap=1)
        batch = conn.create_batch(s)
        refs = [p.provider_ref for p in conn.publish(batch, s, toloka_pages(3))]

        def follow(cursor, waiting: set[str]):
            """Fetch every simulated half hour until ``waiting`` has finished: (cursor, answers, unfinished)."""
            got = []
            for _ in range(10):
                mp.advance(1800)
                result = conn.fetch(batch, cursor, sorted(waiting))
                cursor, got, waiting = result.cursor, got + result.assignments, waiting - set(result.finished_pages)
                if not waiting:
                    break
            return cursor, got, waiting

        cursor, got, waiting = follow(None, set(refs))
        assert not waiting and len(got) == 3
        conn.extend(refs[0], 1)
        cursor, more, waiting = follow(cursor, {refs[0]})
        got += more
        assert not waiting and len(got) == 4 and len({a.assignment_id for a in got}) == 4
        assert got[-1].page_ref == refs[0]
