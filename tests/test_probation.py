"""Probation on the local marketplaces: once adaptive overlap's follow-up pages are for the trusted
pool only, suspects get golden-only probe pages in a lane of their own, and probe pages never hold
a stage open (``campaigns.adaptive.probation``)."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlmodel import func, select

from campaigns.adaptive import probation
from campaigns.demo.oracles import pairwise_oracle
from campaigns.demo.run import _spec_yaml
from campaigns.engine.launch import launch
from campaigns.engine.poll import poll
from campaigns.store.database import open_store
from campaigns.store.models import Assignment, Campaign, Page, PoolMember, Publication, Stage, Task, WorkerAction
from connectors.base import PoolSpec
from connectors.factory import make_connector
from connectors.local import start_local
from tests.test_quality_engine import _admits, _campaign, _lane_of

# suspects who have left the marketplace: they never take a probe page, and more of them than later
# suspects could stand in for (a later suspect may take a slot left for one)
GHOSTS = {f"AGHOSTWORKER000{n}" for n in range(3)}


def _answers_on_market(conn, provider: str, page_ref: str) -> int:
    if provider == "mturk":
        return len(conn.client.list_assignments_for_hit(HITId=page_ref)["Assignments"])
    return len(conn.client.find_assignments(task_suite_id=page_ref).items)


def _stopped_short(conn, provider: str, page_ref: str, answers: int) -> bool:
    """The marketplace says the page takes nobody more, though it was asked for more answers."""
    if provider == "mturk":
        hit = conn.client.get_hit(HITId=page_ref)["HIT"]
        return hit["HITStatus"] == "Reviewable" and hit["MaxAssignments"] > answers
    suite = conn.client.get_task_suite(page_ref)
    return suite.overlap == answers and not suite.remaining_overlap


@pytest.mark.parametrize("provider", ["mturk", "toloka"])
def test_suspects_get_probe_pages_in_a_lane_of_their_own(tmp_path, provider, monkeypatch):
    spec, truth = _campaign(tmp_path, provider, items=10,
                            overlap={"min": 3, "max": 7, "target_agreement": 0.9},
                            review={"block_below_trust": 0.35, "min_evidence": 6, "trusted_above": 0.3,
                                    "probe_pages": 2})
    original = probation.suspects
    monkeypatch.setattr(probation, "suspects", lambda store, campaign: original(store, campaign) | GHOSTS)
    crashed: list[str] = []
    real_publish = probation.publish_pages

    def crash_once(*args, **kwargs):  # the first round dies once its pages are written, before publishing
        if not crashed:
            crashed.append("probe round")
            raise RuntimeError("killed after writing probe pages")
        return real_publish(*args, **kwargs)

    monkeypatch.setattr(probation, "publish_pages", crash_once)
    store = open_store(f"sqlite:///{tmp_path / 'crowd.db'}")
    # seed 3: a run with real suspects left to probe (answers are stored in submission order since
    # issue 18, which changed the course of seed 2's run)
    with start_local(provider, workers=20, spammers=0.25, seed=3, oracle=pairwise_oracle(truth)) as mp:
        conn = make_connector(provider, "local", mp.url, **({"max_workers": 1} if provider == "mturk" else {}))
        stopped: list[str] = []
        real_stop = conn.stop
        conn.stop = lambda ref: (stopped.append(ref), real_stop(ref))[1]  # the real call, recorded
        launch(spec, store, spec_text=_spec_yaml(spec), endpoint=mp.url, connector=conn)
        for _ in range(200):  # fails if the ghosts' unfilled probe slots held the stage open
            mp.advance(600)
            try:
                if poll(store, spec.name, endpoint=mp.url, connector=conn).all_done:
                    break
            except RuntimeError:
                continue  # that poll died; the next one carries on
        with store.session() as s:
            stage = s.exec(select(Stage)).one()
            pages = s.exec(select(Page).where(Page.lane == "probation")).all()
            golden = set(s.exec(select(Task.key).where(Task.golden)).all())
            refs = dict(s.exec(select(Publication.page_id, Publication.provider_ref)).all())
            publications = s.exec(select(func.count()).select_from(Publication)
                                  .where(Publication.page_id.in_([p.id for p in pages]))).one()
            answers = s.exec(select(Assignment.worker_id, Assignment.page_id)
                             .where(Assignment.page_id.in_([p.id for p in pages]))).all()
            got = dict(s.exec(select(Assignment.page_id, func.count()).group_by(Assignment.page_id)).all())
            actions = s.exec(select(WorkerAction).where(WorkerAction.pool == "probation")).all()
            members = s.exec(select(PoolMember).where(PoolMember.pool == "probation")).all()
            status = s.exec(select(Campaign.status)).one()
        lane = stage.batch_ref["extra"]["lane:probation"]
        assert pages and all(_lane_of(conn, provider, refs[p.id]) == lane for p in pages)
        probation_ref = conn.ensure_pool(PoolSpec(name="probation")).ref
        assert probation_ref in _admits(conn, provider, lane) and probation_ref not in _admits(
            conn, provider, stage.batch_ref["ref"])
        # nothing lost: every answer the marketplace has for a probe page is stored, once
        assert all(_answers_on_market(conn, provider, refs[p.id]) == got.get(p.id, 0) for p in pages)
        by_ref = {refs[p.id]: got.get(p.id, 0) for p in pages}
        closed_early = {ref: _stopped_short(conn, provider, ref, by_ref[ref]) for ref in set(stopped)}
    assert status == "done" and all(p.status == "done" and p.follow_up for p in pages)
    # the pages written before the crash were published by the next poll, once each, and no
    # second round was written in their place
    assert crashed and publications == len(pages) == len({refs[p.id] for p in pages})
    assert pages[0].id in refs and len({p.page_key for p in pages}) == len(pages)
    assert all(p.task_keys and set(p.task_keys) <= golden for p in pages)  # golden tasks only
    granted = {a.worker_id for a in actions if a.action == "grant" and a.state == "done"}
    ended = {a.worker_id for a in actions if a.action == "revoke" and a.state == "done"}
    probed = Counter(w for w, _ in answers)
    assert set(probed) - GHOSTS, "a real suspect should have taken a probe page, or this proves little"
    assert set(probed) <= granted and GHOSTS <= granted and not GHOSTS & set(probed)
    assert max(probed.values()) <= 2  # review.probe_pages
    assert granted == ended and not any(m.active for m in members)  # the pool is left empty
    # the ghosts' slots were never filled: those pages were stopped, and the stage still finished
    assert stopped and set(stopped) <= {refs[p.id] for p in pages}
    assert all(closed_early[ref] for ref in stopped)
