"""An assignment read again after the marketplace changed its status (approved elsewhere: an
operator's own tool, auto-approval) keeps its stored answer but takes the new status, and review
settles it from that status instead of asking the marketplace to approve it again."""

from __future__ import annotations

from engine_helpers import STEP_S, launch_in_process, market, write_campaign
from sqlmodel import select

from campaigns.engine.cursor import fetch_new
from campaigns.money.review import review_stage
from campaigns.stages.ingest import ingest
from campaigns.store.database import open_store
from campaigns.store.models import Assignment, Campaign, Stage
from connectors.base import BatchRef
from connectors.factory import make_connector


def test_a_status_changed_on_the_marketplace_is_taken_on_a_re_read(tmp_path):
    db = f"sqlite:///{tmp_path / 'crowd.db'}"
    spec = write_campaign(tmp_path / "c", "mturk", items=6, strict=False)
    with market("mturk") as mp, open_store(db) as store:
        launch_in_process(spec, db, mp.url)
        mp.advance(STEP_S * 3)
        with store.session() as s:
            campaign, stage = s.exec(select(Campaign)).one(), s.exec(select(Stage)).one()
        conn = make_connector("mturk", "local", mp.url)
        assert ingest(store, campaign, stage, fetch_new(store, conn, stage)) > 0
        with store.session() as s:
            first = s.exec(select(Assignment).order_by(Assignment.id)).first()
            stored = len(s.exec(select(Assignment.id)).all())
        assert first.provider_status == "submitted"
        conn.client.approve_assignment(AssignmentId=first.assignment_id)  # done elsewhere

        again = conn.fetch(BatchRef.model_validate(stage.batch_ref), None, [first.page_ref])  # a re-read
        assert first.assignment_id in {a.assignment_id for a in again.assignments}
        assert ingest(store, campaign, stage, again) == 0
        with store.session() as s:
            now = s.get(Assignment, first.id)
        assert now.provider_status == "approved" and now.raw == first.raw and now.review == "pending"

        calls = mp.calls["ApproveAssignment"]
        approved, _ = review_stage(store, conn, campaign, stage)
        with store.session() as s:
            assert s.get(Assignment, first.id).review == "approved"
        assert approved == stored and mp.calls["ApproveAssignment"] - calls == stored - 1
        assert mp.calls.get("GetAssignment", 0) == 0  # settled from the status read, not by asking
