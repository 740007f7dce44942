"""Review writes its outcomes in batches (``money.review.FLUSH_EVERY`` marketplace calls a
transaction): a ``crowd poll`` killed in the middle of a batch (a forked child, ``CROWD_KILL_AT``,
exit 137) has approved on the marketplace more than it wrote; the re-run settles those from the
marketplace and books each approved assignment's reward and fee exactly once."""

from __future__ import annotations

from collections import Counter

from engine_helpers import (
    check_consistent,
    crowd_forked,
    launch_in_process,
    market,
    market_state,
    poll_in_process,
    write_campaign,
)
from sqlmodel import select

from campaigns.money import review
from campaigns.money.review import UNREVIEWED
from campaigns.store.database import open_store
from campaigns.store.models import Assignment, LedgerEntry

BATCH = 3
KILL_AFTER = 5  # calls: one batch of 3 written, 2 carried out but not written


def reviews(db: str) -> Counter:
    with open_store(db) as store, store.session() as s:
        return Counter(s.exec(select(Assignment.review)).all())


def test_poll_killed_mid_batch_books_each_approval_once(db_url, tmp_path, monkeypatch):
    monkeypatch.setattr(review, "FLUSH_EVERY", BATCH)  # the forked poller inherits it
    monkeypatch.setattr(review, "FLUSH_AFTER_S", 3600.0)  # batches by count only: the kill lands mid-batch
    spec = write_campaign(tmp_path / "c", items=8, strict=False)
    with market("mturk") as mp:
        launch_in_process(spec, db_url, mp.url)
        mp.advance(600)
        status = crowd_forked("poll", "--endpoint", mp.url, "--json", db=db_url,
                              CROWD_KILL_AT=f"review.after_call:{KILL_AFTER}")
        assert status == 137
        killed = reviews(db_url)
        decided_on_market = sum(a[3] in ("Approved", "Rejected") for a in market_state(mp)["assignments"])
        assert decided_on_market == KILL_AFTER
        assert killed["approved"] + killed["rejected"] == BATCH  # the batch written before the kill
        assert sum(killed[r] for r in UNREVIEWED) > KILL_AFTER - BATCH  # the rest: intents, to replay

        poll_in_process(db_url, mp.url)
        state = check_consistent(db_url, mp)  # store == marketplace approvals, a reward each, balance == ledger

    after = reviews(db_url)
    assert not any(after[r] for r in UNREVIEWED), "an assignment was left approving / rejecting"
    approved = {a[0] for a in state["store"]["assignments"] if a[3] == "approved"}
    assert len(approved) > KILL_AFTER
    with open_store(db_url) as store, store.session() as s:
        booked = Counter(s.exec(select(LedgerEntry.assignment_id, LedgerEntry.kind)
                                .where(LedgerEntry.kind.in_(["reward", "fee"]))).all())
    assert set(booked) == {(aid, kind) for aid in approved for kind in ("reward", "fee")}
    assert set(booked.values()) == {1}


def test_unreadable_work_is_rejected_with_its_reason_and_books_nothing(tmp_path):
    """The rejection path of the same batches: the worker gets the reason through the marketplace
    (RejectAssignment's RequesterFeedback) and the ledger no reward or fee for that assignment."""
    db = f"sqlite:///{tmp_path / 'crowd.db'}"
    spec = write_campaign(tmp_path / "c", items=8, strict=False)
    with market("mturk") as mp:
        launch_in_process(spec, db, mp.url)
        mp.advance(600)
        assert crowd_forked("poll", "--endpoint", mp.url, "--json", db=db, CROWD_KILL_AT="poll.ingested") == 137
        with open_store(db) as store, store.write() as s:  # ingested, not reviewed: one answer unreadable
            victim = s.exec(select(Assignment).where(Assignment.review == "pending").order_by(Assignment.id)).first()
            victim.parse_error = "item 2 has no answer"
            s.add(victim)
        poll_in_process(db, mp.url)
        with mp.server.lock:
            on_market = mp.server.assignments[victim.assignment_id]
            status, feedback = on_market.status, on_market.feedback
        state = check_consistent(db, mp)
    assert status == "Rejected"
    assert feedback.startswith("Your submission could not be used: item 2 has no answer.")
    reviewed = {a[0]: a[3] for a in state["store"]["assignments"]}
    assert reviewed[victim.assignment_id] == "rejected"
    assert sum(r == "approved" for r in reviewed.values()) >= 2
    assert not [e for e in state["store"]["ledger"] if e[4] == victim.assignment_id]
