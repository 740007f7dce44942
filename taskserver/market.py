"""The requester's operations: pools, screenings, blocks, batches and lanes, pages, reviews, bonuses.

Plain functions over a database session and the server's ``now``; the API module only maps them
to HTTP. Every write that creates something takes an idempotency key (batches, pages, bonuses) or
is naturally idempotent (grant, block, stop, close): a requester that retries after a lost answer
gets what the first call made, and ``created`` says which call made it.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.orm import Session

from taskserver import schemas
from taskserver.models import (
    Assignment,
    Batch,
    Block,
    Bonus,
    Lane,
    Member,
    PageItemRow,
    PageRow,
    Pool,
)

DONE = ("submitted", "approved", "rejected")


class MarketError(Exception):
    """A refused request: HTTP ``status`` and the service's own ``code``."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(8).upper()


def _get(s: Session, model: type, key: str, what: str):
    row = s.get(model, key)
    if row is None:
        raise MarketError(404, "NotFound", f"no {what} {key!r}")
    return row


# --------------------------------------------------------------------------- pools, blocks
def ensure_pool(s: Session, body: schemas.PoolIn, now: datetime, screening: dict | None = None) -> Pool:
    pool = s.scalar(select(Pool).where(Pool.name == body.name))
    if pool is None:
        pool = Pool(id=new_id("P"), name=body.name, description=body.description, screening=screening,
                    created_at=now)
        s.add(pool)
        s.flush()
    elif screening is not None and pool.screening is None:
        raise MarketError(409, "Conflict", f"pool {body.name!r} exists and is not a screening test's pool")
    return pool


def grant(s: Session, pool_id: str, worker_id: str, score: int, now: datetime) -> Member:
    _get(s, Pool, pool_id, "pool")
    member = s.get(Member, (pool_id, worker_id))
    if member is None:
        member = Member(pool_id=pool_id, worker_id=worker_id, score=score, granted_at=now)
        s.add(member)
    else:
        member.score = score
    return member


def revoke(s: Session, pool_id: str, worker_id: str) -> None:
    _get(s, Pool, pool_id, "pool")
    member = s.get(Member, (pool_id, worker_id))
    if member is not None:
        s.delete(member)


def members(s: Session, pool_id: str) -> list[Member]:
    _get(s, Pool, pool_id, "pool")
    return list(s.scalars(select(Member).where(Member.pool_id == pool_id).order_by(Member.worker_id)))


def block(s: Session, worker_id: str, reason: str, now: datetime) -> None:
    if s.get(Block, worker_id) is None:
        s.add(Block(worker_id=worker_id, reason=reason, created_at=now))


def unblock(s: Session, worker_id: str) -> None:
    row = s.get(Block, worker_id)
    if row is not None:
        s.delete(row)


# --------------------------------------------------------------------------- batches, pages
def _check_requirements(s: Session, reqs: Iterable[schemas.Requirement]) -> list[dict]:
    out = []
    for r in reqs:
        if s.get(Pool, r.pool_id) is None:
            raise MarketError(400, "NoSuchPool", f"requirement names pool {r.pool_id!r}, which does not exist",
                              field="requirements")
        out.append(r.model_dump())
    return out


def create_batch(s: Session, body: schemas.BatchIn, now: datetime) -> schemas.BatchOut:
    batch = s.scalar(select(Batch).where(Batch.idempotency_key == body.idempotency_key))
    created = batch is None
    if created:
        own = _check_requirements(s, body.requirements)
        named = {name: own + _check_requirements(s, reqs) for name, reqs in body.lanes.items()}
        spec = body.model_dump(mode="json", include={"name", "title", "description", "instructions", "kind",
                                                     "assignment_duration_s", "lifetime_s",
                                                     "auto_approval_delay_s"})
        batch = Batch(id=new_id("B"), idempotency_key=body.idempotency_key, spec=spec, reward=body.reward,
                      assignments_per_page=body.assignments_per_page, created_at=now)
        s.add(batch)
        s.flush()
        s.add(Lane(id=new_id("L"), batch_id=batch.id, name="", requirements=own))
        for name, reqs in named.items():
            s.add(Lane(id=new_id("L"), batch_id=batch.id, name=name, requirements=reqs))
        s.flush()
    lanes = {lane.name: lane.id for lane in s.scalars(select(Lane).where(Lane.batch_id == batch.id))}
    return schemas.BatchOut(id=batch.id, name=batch.spec.get("name", ""), lane_id=lanes.pop(""), lanes=lanes,
                            created=created)


def _page_out(page: PageRow, created: bool) -> schemas.PageOut:
    return schemas.PageOut(page_id=page.external_id, id=page.id, lane_id=page.lane_id, created=created,
                           assignments=page.assignments)


def publish(s: Session, lane_id: str, pages: Sequence[schemas.PageIn], now: datetime) -> list[schemas.PageOut]:
    lane = _get(s, Lane, lane_id, "lane")
    batch = s.get(Batch, lane.batch_id)
    if batch.closed_at is not None:
        raise MarketError(409, "BatchClosed", f"batch {batch.id} is closed")
    keys = [p.idempotency_key for p in pages]
    if len(set(keys)) != len(keys):
        raise MarketError(400, "DuplicateKey", "two pages in one request share an idempotency key",
                          field="pages")
    existing = {p.idempotency_key: p for p in s.scalars(select(PageRow).where(PageRow.idempotency_key.in_(keys)))}
    for key, row in existing.items():
        if row.lane_id != lane_id:
            raise MarketError(409, "KeyInUse", f"idempotency key {key!r} was used for a page of another lane")
    n = s.scalar(select(func.max(PageRow.n))) or 0
    lifetime = timedelta(seconds=batch.spec["lifetime_s"])
    out, items = [], []
    for body in pages:
        row = existing.get(body.idempotency_key)
        if row is not None:
            out.append(_page_out(row, False))
            continue
        n += 1
        row = PageRow(id=new_id("G"), n=n, lane_id=lane_id, batch_id=batch.id,
                      idempotency_key=body.idempotency_key, external_id=body.page_id,
                      items=[i.model_dump(mode="json") for i in body.items],
                      assignments=body.assignments or batch.assignments_per_page,
                      created_at=now, expires_at=now + lifetime)
        s.add(row)
        items += [PageItemRow(page_id=row.id, position=k, item_key=i.item_key, golden=i.golden)
                  for k, i in enumerate(body.items)]
        out.append(_page_out(row, True))
    s.flush()  # pages before their items (the foreign key)
    s.add_all(items)
    s.flush()
    return out


def find_pages(s: Session, batch_id: str, page_ids: Sequence[str]) -> list[schemas.PageOut]:
    _get(s, Batch, batch_id, "batch")
    rows = s.scalars(select(PageRow).where(PageRow.batch_id == batch_id, PageRow.external_id.in_(page_ids))
                     .order_by(PageRow.n))
    return [_page_out(r, False) for r in rows]


def _counts(s: Session, page_ids: Sequence[str], now: datetime) -> dict[str, tuple[int, int]]:
    """page id -> (answers in, live reservations)."""
    done = func.sum(case((Assignment.state.in_(DONE), 1), else_=0))
    live = func.sum(case((and_(Assignment.state == "reserved", Assignment.deadline > now), 1), else_=0))
    rows = s.execute(select(Assignment.page_id, done, live).where(Assignment.page_id.in_(page_ids))
                     .group_by(Assignment.page_id))
    return {pid: (int(d or 0), int(r or 0)) for pid, d, r in rows}


def page_state(s: Session, page: PageRow, now: datetime, counts: dict | None = None,
               batch: Batch | None = None) -> schemas.PageState:
    done, live = (counts if counts is not None else _counts(s, [page.id], now)).get(page.id, (0, 0))
    batch = batch or s.get(Batch, page.batch_id)
    stopped = page.stopped_at is not None or batch.closed_at is not None
    expired = page.expires_at <= now
    finished = done >= page.assignments or ((stopped or expired) and live == 0)
    return schemas.PageState(id=page.id, page_id=page.external_id, lane=page.lane_id,
                             assignments=page.assignments, submitted=done,
                             reserved=live, stopped=stopped, expired=expired, finished=finished)


def extend(s: Session, page_id: str, extra: int, if_assignments: int | None = None) -> PageRow:
    page = _get(s, PageRow, page_id, "page")
    if if_assignments is None or page.assignments == if_assignments:
        page.assignments += extra
    elif page.assignments != if_assignments + extra:
        raise MarketError(409, "Conflict", f"page {page_id} allows {page.assignments} assignments, "
                          f"not {if_assignments}")
    return page


def stop(s: Session, page_id: str, now: datetime) -> PageRow:
    page = _get(s, PageRow, page_id, "page")
    if page.stopped_at is None:
        page.stopped_at = now
    return page


def close_batch(s: Session, batch_id: str, page_ids: Sequence[str] | None, now: datetime) -> None:
    batch = _get(s, Batch, batch_id, "batch")
    if page_ids is None:
        if batch.closed_at is None:
            batch.closed_at = now
        return
    s.execute(update(PageRow).where(PageRow.batch_id == batch_id, PageRow.id.in_(page_ids),
                                    PageRow.stopped_at.is_(None)).values(stopped_at=now))


# --------------------------------------------------------------------------- assignments
def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, _, value = text.partition(":")
        if tag != "seq":
            raise ValueError
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise MarketError(400, "BadCursor", "the cursor is not one this server handed out", field="cursor") from None


def auto_approve(s: Session, now: datetime) -> None:
    """Approve work left unreviewed past its batch's ``auto_approval_delay_s``, as marketplaces do."""
    due = s.execute(select(Assignment, Batch).join(PageRow, PageRow.id == Assignment.page_id)
                    .join(Batch, Batch.id == PageRow.batch_id).where(Assignment.state == "submitted"))
    for a, batch in due:
        if a.submitted_at + timedelta(seconds=batch.spec["auto_approval_delay_s"]) <= now:
            a.state, a.reviewed_at = "approved", now


def assignment_out(a: Assignment, page: PageRow) -> schemas.AssignmentOut:
    return schemas.AssignmentOut(id=a.id, page=page.id, page_id=page.external_id, worker_id=a.worker_id,
                                 status=a.state, accepted_at=a.reserved_at, submitted_at=a.submitted_at,
                                 answers=a.answers or {}, raw=a.raw or "[]", session=a.external_id,
                                 completed=a.external_state == "completed")


def fetch(s: Session, batch_id: str, q: schemas.AssignmentQuery, now: datetime) -> schemas.AssignmentPage:
    batch = _get(s, Batch, batch_id, "batch")
    after = decode_cursor(q.cursor)
    scope = PageRow.batch_id == batch_id
    if q.pages is not None:
        scope = and_(scope, PageRow.id.in_(q.pages))
    rows = list(s.execute(select(Assignment, PageRow).join(PageRow, PageRow.id == Assignment.page_id)
                          .where(scope, Assignment.seq > after).order_by(Assignment.seq).limit(q.limit + 1)))
    has_more = len(rows) > q.limit
    rows = rows[:q.limit]
    last = rows[-1][0].seq if rows else after
    pages = list(s.scalars(select(PageRow).where(scope)))
    counts = _counts(s, [p.id for p in pages], now)
    done = {p.id for p in pages if page_state(s, p, now, counts, batch).finished}
    return schemas.AssignmentPage(assignments=[assignment_out(a, p) for a, p in rows],
                                  cursor=encode_cursor(last), has_more=has_more,
                                  finished_pages=[] if has_more else sorted(done),
                                  open_pages=[p.id for p in pages if has_more or p.id not in done])


def review(s: Session, assignment_id: str, approve: bool, message: str | None, now: datetime) -> Assignment:
    a = _get(s, Assignment, assignment_id, "assignment")
    target = "approved" if approve else "rejected"
    if a.state == target:
        return a  # a repeated review is a no-op
    if a.state != "submitted":
        raise MarketError(409, "InvalidState", f"assignment {assignment_id} is {a.state}, not submitted")
    a.state, a.reviewed_at, a.message = target, now, message
    return a


# --------------------------------------------------------------------------- money
def spent(s: Session) -> Decimal:
    rewards = s.execute(select(Batch.reward, func.count(Assignment.id))
                        .join(PageRow, PageRow.batch_id == Batch.id)
                        .join(Assignment, Assignment.page_id == PageRow.id)
                        .where(Assignment.state.in_(("submitted", "approved")))
                        .group_by(Batch.id, Batch.reward))
    total = sum((reward * n for reward, n in rewards), Decimal("0"))
    return total + sum(s.scalars(select(Bonus.amount)), Decimal("0"))


def balance(s: Session, budget: Decimal | None, currency: str) -> schemas.BalanceOut:
    used = spent(s)
    return schemas.BalanceOut(budget=budget, spent=used, available=None if budget is None else budget - used,
                              currency=currency)


def pay_bonus(s: Session, body: schemas.BonusIn, budget: Decimal | None, now: datetime) -> schemas.BonusOut:
    row = s.scalar(select(Bonus).where(Bonus.idempotency_key == body.idempotency_key))
    if row is not None:
        if (row.worker_id, row.assignment_id, row.amount) != (body.worker_id, body.assignment_id, body.amount):
            raise MarketError(409, "KeyInUse", "this idempotency key was used for another bonus")
        return bonus_out(row, created=False)
    a = _get(s, Assignment, body.assignment_id, "assignment")
    if a.worker_id != body.worker_id:
        raise MarketError(400, "WrongWorker", f"assignment {a.id} is not worker {body.worker_id}'s",
                          field="worker_id")
    if a.state not in DONE:
        raise MarketError(409, "InvalidState", f"assignment {a.id} has not been submitted")
    if budget is not None and spent(s) + body.amount > budget:
        raise MarketError(402, "InsufficientFunds", "the bonus would exceed the server's budget")
    row = Bonus(id=new_id("X"), idempotency_key=body.idempotency_key, worker_id=body.worker_id,
                assignment_id=body.assignment_id, amount=body.amount, reason=body.reason, created_at=now)
    s.add(row)
    s.flush()
    return bonus_out(row, created=True)


def bonus_out(row: Bonus, created: bool = False) -> schemas.BonusOut:
    return schemas.BonusOut(id=row.id, worker_id=row.worker_id, assignment_id=row.assignment_id, amount=row.amount,
                            reason=row.reason, idempotency_key=row.idempotency_key, created=created)


def bonuses(s: Session, assignment_id: str | None) -> list[schemas.BonusOut]:
    q = select(Bonus).order_by(Bonus.created_at, Bonus.id)
    if assignment_id is not None:
        q = q.where(Bonus.assignment_id == assignment_id)
    return [bonus_out(b) for b in s.scalars(q)]


def get_page(s: Session, page_id: str) -> PageRow:
    return _get(s, PageRow, page_id, "page")


def review_target(s: Session, assignment_id: str) -> Assignment:
    return _get(s, Assignment, assignment_id, "assignment")


# --------------------------------------------------------------------------- lanes as Prolific studies
def lane_out(s: Session, lane_id: str) -> schemas.LaneOut:
    lane = _get(s, Lane, lane_id, "lane")
    places = s.scalar(select(func.coalesce(func.sum(PageRow.assignments), 0)).where(PageRow.lane_id == lane_id))
    return schemas.LaneOut(id=lane.id, batch_id=lane.batch_id, name=lane.name, places=places,
                           study_id=lane.study_id)


def serve_as_study(s: Session, lane_id: str, study_id: str, completion_code: str) -> Lane:
    """Idempotent; a lane serves one study for good (its participants' sessions point at it)."""
    lane = _get(s, Lane, lane_id, "lane")
    if lane.study_id not in (None, study_id):
        raise MarketError(409, "InvalidState", f"lane {lane_id} already serves study {lane.study_id}")
    lane.study_id, lane.completion_code = study_id, completion_code
    return lane
