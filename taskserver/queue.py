"""Who gets which page: eligibility, the next page, reservations, submissions, screening tests.

A worker may take a page of a lane whose requirements they meet (and not if blocked), never a
page they took before, never a page holding a real item they already answered or hold, and only
while the page has a place left: answers in plus live reservations below its assignments. Pages go
out in publication order. A reservation lasts the batch's ``assignment_duration_s``; past its
deadline it holds no place, and a late submission is still kept if the page has a place for it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, not_, or_, select
from sqlalchemy.orm import Session

from taskserver import forms
from taskserver.market import DONE, MarketError, new_id
from taskserver.models import (
    Assignment,
    Batch,
    Block,
    Lane,
    Member,
    PageItemRow,
    PageRow,
    Pool,
    ScreeningAttempt,
)


def _meets(reqs: list[dict], scores: dict[str, int]) -> bool:
    for r in reqs:
        member = r["pool_id"] in scores
        if r.get("exclude"):
            if member:
                return False
        elif not member or (r.get("min_score") is not None and scores[r["pool_id"]] < r["min_score"]):
            return False
    return True


def scores_of(s: Session, worker_id: str) -> dict[str, int]:
    return dict(s.execute(select(Member.pool_id, Member.score).where(Member.worker_id == worker_id)).all())


def open_lanes(s: Session) -> list[tuple[Lane, Batch]]:
    return list(s.execute(select(Lane, Batch).join(Batch, Batch.id == Lane.batch_id)
                          .where(Batch.closed_at.is_(None)).order_by(Batch.created_at, Lane.name)))


def eligible_lanes(s: Session, worker_id: str, study_lane: str | None = None) -> list[str]:
    """Lanes the worker may take pages from. A lane served as a Prolific study is only for its
    participants (arriving with a session of that study: ``study_lane``), never for the team."""
    if s.get(Block, worker_id) is not None:
        return []
    scores = scores_of(s, worker_id)
    return [lane.id for lane, _ in open_lanes(s) if _meets(lane.requirements, scores)
            and (lane.id == study_lane if study_lane else lane.study_id is None)]


def active(s: Session, worker_id: str, now: datetime) -> Assignment | None:
    return s.scalar(select(Assignment).where(Assignment.worker_id == worker_id, Assignment.state == "reserved",
                                             Assignment.deadline > now).order_by(Assignment.reserved_at))


def _live(now: datetime):
    """An assignment that holds a place: an answer in, or a reservation before its deadline."""
    return or_(Assignment.state.in_(DONE), and_(Assignment.state == "reserved", Assignment.deadline > now))


def _open_pages(lanes: list[str], worker_id: str, now: datetime):
    """Pages of ``lanes`` this worker may take now, in queue order. Written with uncorrelated
    subqueries (each evaluated once per query), so the database walks the pages once."""
    taken = (select(Assignment.page_id, func.count(Assignment.id).label("n"))
             .where(_live(now)).group_by(Assignment.page_id).subquery())
    mine = select(Assignment.page_id).where(Assignment.worker_id == worker_id)
    held = (select(PageItemRow.item_key).join(Assignment, Assignment.page_id == PageItemRow.page_id)
            .where(Assignment.worker_id == worker_id, not_(PageItemRow.golden), _live(now)))
    clashing = select(PageItemRow.page_id).where(not_(PageItemRow.golden), PageItemRow.item_key.in_(held))
    return (select(PageRow.id).outerjoin(taken, taken.c.page_id == PageRow.id)
            .where(PageRow.lane_id.in_(lanes), PageRow.stopped_at.is_(None), PageRow.expires_at > now,
                   func.coalesce(taken.c.n, 0) < PageRow.assignments, PageRow.id.not_in(mine),
                   PageRow.id.not_in(clashing))
            .order_by(PageRow.n))


def next_page(s: Session, worker_id: str, now: datetime, study_lane: str | None = None) -> Assignment | None:
    """The worker's live reservation, else a new one on the first page they may take, else None."""
    mine = active(s, worker_id, now)
    if mine is not None:
        return mine
    lanes = eligible_lanes(s, worker_id, study_lane)
    if not lanes:
        return None
    page_id = s.scalar(_open_pages(lanes, worker_id, now).limit(1))  # ids only: pages carry their items
    if page_id is None:
        return None
    page = s.get(PageRow, page_id)
    batch = s.get(Batch, page.batch_id)
    a = Assignment(id=new_id("S"), page_id=page.id, worker_id=worker_id, state="reserved", reserved_at=now,
                   deadline=now + timedelta(seconds=batch.spec["assignment_duration_s"]))
    s.add(a)
    s.flush()
    return a


def work_left(s: Session, worker_id: str, now: datetime) -> int:
    """How many pages this worker could take now (for the home page and the simulated team)."""
    lanes = eligible_lanes(s, worker_id)
    if not lanes:
        return 0
    return s.scalar(select(func.count()).select_from(_open_pages(lanes, worker_id, now).subquery())) or 0


def own_assignment(s: Session, worker_id: str, assignment_id: str) -> tuple[Assignment, PageRow, Batch]:
    """The worker's own assignment; anyone else's is "not found" (no hint that it exists)."""
    a = s.get(Assignment, assignment_id)
    if a is None or a.worker_id != worker_id:
        raise MarketError(404, "NotFound", "no such page of yours")
    page = s.get(PageRow, a.page_id)
    return a, page, s.get(Batch, page.batch_id)


class Outcome:
    """What a submission came to: ``stored`` (new), ``again`` (already received: nothing written),
    or ``refused`` with a reason for the worker."""

    def __init__(self, kind: str, message: str = ""):
        self.kind, self.message = kind, message


def submit(s: Session, worker_id: str, assignment_id: str, pairs: Sequence[tuple[str, str]],
           now: datetime) -> Outcome:
    a, page, _ = own_assignment(s, worker_id, assignment_id)
    if a.state in DONE:
        return Outcome("again", "This page was already received. Thank you!")
    if a.state != "reserved":
        return Outcome("refused", "You handed this page back, so it was not taken.")
    if a.deadline <= now:
        others = s.scalar(select(func.count(Assignment.id)).where(
            Assignment.page_id == page.id, Assignment.id != a.id, _live(now)))
        if others >= page.assignments:
            return Outcome("refused", "Your time for this page ran out and others have answered it meanwhile, "
                                      "so this answer is not needed. Thank you all the same.")
    answers = forms.parse(page.items, pairs)  # FormError: nothing is written
    seq = (s.scalar(select(func.max(Assignment.seq))) or 0) + 1
    a.state, a.submitted_at, a.answers, a.seq = "submitted", now, answers, seq
    a.raw = json.dumps([[n, v] for n, v in pairs], ensure_ascii=False)
    return Outcome("stored")


def release(s: Session, worker_id: str, assignment_id: str) -> None:
    a, _, _ = own_assignment(s, worker_id, assignment_id)
    if a.state == "reserved":
        a.state = "released"


def progress(s: Session, worker_id: str) -> dict[str, Any]:
    rows = list(s.execute(select(Assignment.state, Assignment.reserved_at, Assignment.submitted_at)
                          .where(Assignment.worker_id == worker_id, Assignment.state.in_(DONE))))
    seconds = sum((sub - res).total_seconds() for _, res, sub in rows if sub)
    return {"pages": len(rows), "approved": sum(1 for r in rows if r[0] == "approved"),
            "rejected": sum(1 for r in rows if r[0] == "rejected"), "minutes": round(seconds / 60)}


# --------------------------------------------------------------------------- screening
def screenings_for(s: Session, worker_id: str, now: datetime) -> list[tuple[Pool, datetime | None]]:
    """Screening tests that open work to this worker: the pools open lanes ask for that the worker
    is not in, with when the worker may (next) take each (None: now; ``datetime.max``: never)."""
    if s.get(Block, worker_id) is not None:
        return []
    wanted = {r["pool_id"] for lane, _ in open_lanes(s) for r in lane.requirements if not r.get("exclude")}
    scores = scores_of(s, worker_id)
    out = []
    for pool in s.scalars(select(Pool).where(Pool.id.in_(wanted), Pool.screening.is_not(None)).order_by(Pool.name)):
        if pool.id in scores:
            continue
        out.append((pool, retry_at(s, pool, worker_id, now)))
    return out


def retry_at(s: Session, pool: Pool, worker_id: str, now: datetime) -> datetime | None:
    last = s.scalar(select(ScreeningAttempt).where(ScreeningAttempt.pool_id == pool.id,
                                                   ScreeningAttempt.worker_id == worker_id)
                    .order_by(ScreeningAttempt.submitted_at.desc()).limit(1))
    if last is None or last.passed:
        return None
    delay = pool.screening.get("retry_delay_s")
    if delay is None:
        return datetime.max.replace(tzinfo=now.tzinfo)
    when = last.submitted_at + timedelta(seconds=delay)
    return when if when > now else None


def grade(question: dict, values: list[str]) -> bool:
    expected, options = question["answer"], [o[0] for o in question["options"]]
    if question["kind"] == "multiple_choice":
        return set(values) == set(expected)
    if len(values) != 1:
        return False
    if question["kind"] == "likert" and values[0] in options:
        pos = options.index(values[0])
        return any(abs(pos - options.index(e)) <= question.get("tolerance", 0) for e in expected if e in options)
    return values[0] in expected


def take_screening(s: Session, worker_id: str, pool: Pool, pairs: Sequence[tuple[str, str]],
                   now: datetime) -> ScreeningAttempt:
    if retry_at(s, pool, worker_id, now) is not None:
        raise MarketError(409, "NotYet", "you may not take this test again yet")
    got: dict[str, list[str]] = {}
    for name, value in pairs:
        got.setdefault(name, []).append(value)
    questions = pool.screening["questions"]
    right = sum(grade(q, got.get(f"q.{q['id']}", [])) for q in questions)
    score = round(100 * right / len(questions))
    passed = score >= pool.screening["pass_score"]
    attempt = ScreeningAttempt(pool_id=pool.id, worker_id=worker_id, submitted_at=now, score=score, passed=passed,
                               answers={k: v for k, v in got.items() if k.startswith("q.")})
    s.add(attempt)
    if passed and s.get(Member, (pool.id, worker_id)) is None:
        s.add(Member(pool_id=pool.id, worker_id=worker_id, score=score, granted_at=now))
    return attempt
