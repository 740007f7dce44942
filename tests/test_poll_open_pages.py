"""A poll's page and budget reads look at open pages and unreviewed assignments only (issue 19,
part 3): ``refresh_pages`` marks done exactly the pages it did when it read every page of the
stage, ``outstanding_work`` prices the same slots, and on SQLite the reads go through the indexes
made for them (``ix_pages_open``, ``ix_assignments_stage_id_review``), not over the whole stage."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import update
from sqlmodel import select
from test_store_ops import assignment, seed

from campaigns.engine.cursor import open_pages
from campaigns.engine.steps.pages import mark_finished
from campaigns.money.budget import outstanding_work
from campaigns.stages.pages import refresh_pages
from campaigns.store.database import open_store
from campaigns.store.models import Assignment, Page, Publication, Stage
from payouts.fees import fee_schedule

REWARD = Decimal("0.05")


def build(store) -> tuple[int, int, dict[str, int]]:
    """Pages of one stage (2 assignments each): full, half full, empty but finished on the
    marketplace, done before, planned; and a page of another stage."""
    cid, (sid, other) = seed(store, stages=2)
    shapes = {"full": ("published", 2), "half": ("published", 1), "finished": ("published", 0),
              "done": ("done", 0), "planned": ("planned", 0), "elsewhere": ("published", 0)}
    ids: dict[str, int] = {}
    k = 0
    with store.write() as s:
        s.execute(update(Stage).where(Stage.id == sid).values(reward=REWARD))
        for name, (status, answers) in shapes.items():
            page = Page(stage_id=other if name == "elsewhere" else sid, page_key=f"pg-{name}", status=status,
                        assignments=2)
            s.add(page)
            s.flush()
            ids[name] = page.id
            s.add(Publication(page_id=page.id, provider="mturk", provider_ref=f"H-{name}",
                              idempotency_key=f"pub-{name}"))
            rows = []
            for _ in range(answers):
                rows.append(dict(assignment(sid, k), page_id=page.id, page_ref=f"H-{name}"))
                k += 1
            store.insert_ignore(s, Assignment, rows, ["provider", "assignment_id"])
        s.execute(update(Assignment).where(Assignment.assignment_id == "A00000").values(review="approved"))
    return cid, sid, ids


def statuses(store, ids: dict[str, int]) -> dict[str, str]:
    with store.session() as s:
        by_id = dict(s.exec(select(Page.id, Page.status)).all())
    return {name: by_id[pid] for name, pid in ids.items()}


def test_refresh_pages_marks_full_and_finished_pages_done(db_url):
    store = open_store(db_url)
    try:
        _, sid, ids = build(store)
        with store.session() as s:
            stage = s.get(Stage, sid)
        mark_finished(store, ["H-finished", "H-elsewhere"], open_pages(store, stage))  # the marketplace's report
        assert refresh_pages(store, sid) == (3, 5)
        assert statuses(store, ids) == {"full": "done", "half": "published", "finished": "done", "done": "done",
                                        "planned": "planned", "elsewhere": "published"}
        assert refresh_pages(store, sid) == (3, 5)  # nothing new: nothing changes
    finally:
        store.close()


def test_outstanding_work_prices_open_slots_and_unreviewed_assignments(db_url):
    store = open_store(db_url)
    try:
        cid, _, _ = build(store)
        fees = fee_schedule("mturk")
        # open slots: "half" 1, "finished" 2 (published, none in yet); unreviewed: 2 of the 3 stored;
        # and the other stage's page (reward 0): 2 open slots at its fee alone
        expected = 5 * (REWARD + fees.assignment_fee(REWARD, 2)) + 2 * fees.assignment_fee(Decimal("0"), 2)
        with store.session() as s:
            assert outstanding_work(s, cid) == expected
    finally:
        store.close()


def test_the_poll_reads_use_their_indexes_on_sqlite(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'crowd.db'}")
    try:
        build(store)
        with store.engine.connect() as conn:
            def plan(sql: str) -> str:
                return " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all())

            assert "ix_pages_open" in plan("SELECT id FROM pages WHERE stage_id = 1 AND status != 'done'")
            assert "ix_pages_open" in plan("SELECT count(*) FROM pages WHERE stage_id = 1 AND status != 'done'")
            assert "ix_pages_stage_id_status (stage_id=? AND status=?)" in plan(  # the extensions step's read
                "SELECT id FROM pages WHERE stage_id = 1 AND status = 'extending'")
            assert "ix_assignments_stage_id_review" in plan(
                "SELECT id FROM assignments WHERE stage_id = 1 AND review IN ('pending', 'approving', 'rejecting') "
                "ORDER BY id")  # review's read, in id order: not the whole stage walked in id order
            assert "ix_ledger_campaign_id_state_kind" in plan(
                "SELECT id FROM ledger WHERE campaign_id = 1 AND state = 'planned'")  # planned spend
            assert "_state_kind" in plan(  # a stage's bonuses to pay (bonuses.pay_planned)
                "SELECT id FROM ledger WHERE campaign_id = 1 AND kind = 'bonus' AND state IN ('planned', 'sent') "
                "AND stage_id = 1 ORDER BY id")
    finally:
        store.close()
