"""Managing the team (the CLI's ``crowd team``): invite, revoke, list, and the payout sheet.

An invite link holds a random token shown once; the database keeps only its hash, so a leaked
database opens no one's account. Revoking a worker revokes every invite and ends every session.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from taskserver.market import MarketError, new_id
from taskserver.models import Assignment, Batch, Bonus, Invite, PageRow, WebSession, Worker
from taskserver.security import digest, new_token

NAME = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


@dataclass
class Invitation:
    worker_id: str
    name: str
    token: str  # shown once; only its hash is stored

    def link(self, public_url: str) -> str:
        return f"{public_url.rstrip('/')}/join/{self.token}"


def invite(s: Session, name: str, now: datetime, worker_id: str | None = None) -> Invitation:
    """A new invite for ``name`` (creating the worker on first use). Earlier links keep working
    until revoked."""
    name = name.strip()
    if not NAME.fullmatch(name):
        raise MarketError(400, "BadName", "a worker's name is 1-200 printable characters")
    worker = s.scalar(select(Worker).where(Worker.name == name))
    if worker is None:
        worker = Worker(id=worker_id or new_id("W"), name=name, created_at=now)
        s.add(worker)
        s.flush()
    elif worker.revoked_at is not None:
        worker.revoked_at = None  # invited again: back on the team
    token = new_token()
    s.add(Invite(token_hash=digest(token), worker_id=worker.id, created_at=now))
    s.flush()
    return Invitation(worker.id, worker.name, token)


def revoke(s: Session, name: str, now: datetime) -> Worker:
    worker = s.scalar(select(Worker).where(Worker.name == name))
    if worker is None:
        raise MarketError(404, "NotFound", f"no worker named {name!r}")
    worker.revoked_at = now
    for inv in s.scalars(select(Invite).where(Invite.worker_id == worker.id, Invite.revoked_at.is_(None))):
        inv.revoked_at = now
    s.execute(delete(WebSession).where(WebSession.worker_id == worker.id))
    return worker


def worker_for_token(s: Session, token: str) -> Worker | None:
    inv = s.get(Invite, digest(token))
    if inv is None or inv.revoked_at is not None:
        return None
    worker = s.get(Worker, inv.worker_id)
    return worker if worker is not None and worker.revoked_at is None else None


def roster(s: Session) -> list[dict]:
    done = dict(s.execute(select(Assignment.worker_id, func.count(Assignment.id))
                          .where(Assignment.state.in_(("submitted", "approved", "rejected")))
                          .group_by(Assignment.worker_id)).all())
    return [{"worker_id": w.id, "name": w.name, "active": w.revoked_at is None, "pages": done.get(w.id, 0),
             "invited": w.created_at.isoformat()} for w in s.scalars(select(Worker).order_by(Worker.name))]


def payouts(s: Session, since: datetime | None = None) -> list[dict]:
    """What each worker is owed: rewards of approved work and every bonus (from ``since``)."""
    names = dict(s.execute(select(Worker.id, Worker.name)).all())
    rows: dict[str, dict] = {}

    def row(worker_id: str) -> dict:
        return rows.setdefault(worker_id, {"worker_id": worker_id, "name": names.get(worker_id, ""),
                                           "approved_pages": 0, "rewards": Decimal("0"),
                                           "bonuses": Decimal("0")})

    q = (select(Assignment.worker_id, Batch.reward).join(PageRow, PageRow.id == Assignment.page_id)
         .join(Batch, Batch.id == PageRow.batch_id).where(Assignment.state == "approved"))
    if since is not None:
        q = q.where(Assignment.reviewed_at >= since)
    for worker_id, reward in s.execute(q):
        r = row(worker_id)
        r["approved_pages"] += 1
        r["rewards"] += reward
    bq = select(Bonus.worker_id, Bonus.amount)
    if since is not None:
        bq = bq.where(Bonus.created_at >= since)
    for worker_id, amount in s.execute(bq):
        row(worker_id)["bonuses"] += amount
    out = sorted(rows.values(), key=lambda r: (r["name"], r["worker_id"]))
    for r in out:
        r["total"] = r["rewards"] + r["bonuses"]
    return out


def payouts_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    fields = ["worker_id", "name", "approved_pages", "rewards", "bonuses", "total"]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(r[k]) for k in fields})
    return buf.getvalue()


def _cell(value: object) -> str:
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text  # no formulas in a spreadsheet
