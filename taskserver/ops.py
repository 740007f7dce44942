"""The ops view (read-only, requester token): per batch and lane, pages done and answers per hour;
spend against budget as a chart; workers with their work here and, from crowdbridge's store, their
trust and its evidence.

The server knows nothing of campaigns; whoever starts it may hand it an ``OpsSource`` (``crowd
serve`` hands one reading crowdbridge's store) for the figures only the requester's side has.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from taskserver.market import DONE, page_state
from taskserver.models import Assignment, Batch, Block, Bonus, Lane, Member, PageRow, Pool, Worker
from taskserver.pages import checked_form, message, page, session_of, start_session
from taskserver.security import same

router = APIRouter(include_in_schema=False)


class OpsSource(Protocol):
    def workers(self) -> dict[str, dict[str, Any]]:
        """worker id -> {"trust": float | None, "evidence": str}"""
        ...

    def budgets(self) -> list[dict[str, Any]]:
        """[{"campaign", "budget": Decimal | None, "spent": Decimal, "committed": Decimal}]"""
        ...


def _allowed(request: Request) -> bool:
    token = request.app.state.settings.requester_token
    header = request.headers.get("authorization", "")
    if token is not None and header.lower().startswith("bearer ") and same(header[7:], token.get_secret_value()):
        return True
    return session_of(request, ops=True) is not None


@router.get("/ops/login")
def login_form(request: Request):
    return page(request, "ops_login.html", csrf="")


@router.post("/ops/login")
async def login(request: Request):
    host = request.client.host if request.client else "?"
    if not request.app.state.logins.allow(host):
        return message(request, "Too many attempts", "Too many sign-in attempts from here; wait a minute.",
                       status=429, back=None)
    form = await request.form()
    token = request.app.state.settings.requester_token
    given = form.get("token")
    if token is None or not isinstance(given, str) or not same(given, token.get_secret_value()):
        return page(request, "ops_login.html", status=401, error="That is not the requester token.", csrf="")
    response = RedirectResponse("/ops", status_code=303)
    start_session(request, None, response)
    return response


@router.get("/ops")
def ops(request: Request):
    if not _allowed(request):
        return RedirectResponse("/ops/login", status_code=303)
    now = request.app.state.clock()
    source: OpsSource | None = request.app.state.ops_source
    with request.app.state.db.read() as s:
        context = summary(s, now, request.app.state.settings.budget)
    context["store"] = source.budgets() if source else []
    trust = source.workers() if source else {}
    for w in context["workers"]:
        w.update(trust.get(w["worker_id"], {}))
    context["has_store"] = source is not None
    return page(request, "ops.html", **context)


@router.post("/ops/logout")
async def logout(request: Request):
    row = session_of(request, ops=True)
    if row is not None:
        await checked_form(request, row)
    response = RedirectResponse("/ops/login", status_code=303)
    response.delete_cookie("cb_session", path="/")
    return response


def summary(s: Session, now: datetime, budget: Decimal | None) -> dict[str, Any]:
    hour_ago = now - timedelta(hours=1)
    lanes = []
    done_times: list[tuple[datetime, Decimal]] = []
    for lane, batch in s.execute(select(Lane, Batch).join(Batch, Batch.id == Lane.batch_id)
                                 .order_by(Batch.created_at, Lane.name)):
        pages = list(s.scalars(select(PageRow).where(PageRow.lane_id == lane.id)))
        answers = list(s.scalars(select(Assignment).join(PageRow, PageRow.id == Assignment.page_id)
                                 .where(PageRow.lane_id == lane.id, Assignment.state.in_(DONE))))
        finished = sum(page_state(s, p, now, batch=batch).finished for p in pages)
        first = min((a.submitted_at for a in answers), default=None)
        hours = max((now - first).total_seconds() / 3600, 1 / 60) if first else None
        done_times += [(a.submitted_at, batch.reward) for a in answers if a.state != "rejected"]
        lanes.append({"batch": batch.spec.get("name") or batch.spec["title"], "batch_id": batch.id,
                      "lane": lane.name or "(own)", "pages": len(pages), "finished": finished,
                      "answers": len(answers), "last_hour": sum(a.submitted_at >= hour_ago for a in answers),
                      "per_hour": round(len(answers) / hours, 1) if hours else 0.0,
                      "reward": batch.reward, "closed": batch.closed_at is not None})
    done_times += list(s.execute(select(Bonus.created_at, Bonus.amount)))
    return {"lanes": lanes, "chart": spend_chart(done_times, budget, now), "budget": budget,
            "spent": sum((a for _, a in done_times), Decimal("0")), "workers": worker_rows(s)}


def worker_rows(s: Session) -> list[dict[str, Any]]:
    states: dict[str, Counter] = defaultdict(Counter)
    for wid, state in s.execute(select(Assignment.worker_id, Assignment.state).where(Assignment.state.in_(DONE))):
        states[wid][state] += 1
    names = dict(s.execute(select(Worker.id, Worker.name)).all())
    blocked = set(s.scalars(select(Block.worker_id)))
    pools: dict[str, list[str]] = defaultdict(list)
    for wid, name, score in s.execute(select(Member.worker_id, Pool.name, Member.score)
                                      .join(Pool, Pool.id == Member.pool_id)):
        pools[wid].append(f"{name} ({score})")
    ids = sorted(set(names) | set(states))
    return [{"worker_id": w, "name": names.get(w, ""), "pages": sum(states[w].values()),
             "approved": states[w]["approved"], "rejected": states[w]["rejected"], "blocked": w in blocked,
             "pools": ", ".join(sorted(pools[w]))} for w in ids]


def spend_chart(points: list[tuple[datetime, Decimal]], budget: Decimal | None, now: datetime,
                width: int = 640, height: int = 200) -> dict[str, Any]:
    """Cumulative spend over time as an SVG polyline (numbers only; the template draws it)."""
    points = sorted(points)
    if not points:
        return {"width": width, "height": height, "line": "", "budget_y": None, "top": budget or Decimal(0),
                "start": None, "end": now}
    start, end = points[0][0], max(now, points[-1][0])
    span = max((end - start).total_seconds(), 1.0)
    total = sum((a for _, a in points), Decimal("0"))
    top = max(total, budget or Decimal(0)) * Decimal("1.1") or Decimal(1)
    run, xy = Decimal(0), [f"0,{height}"]
    for when, amount in points:
        run += amount
        x = (when - start).total_seconds() / span * width
        xy.append(f"{x:.1f},{height - float(run / top) * height:.1f}")
    xy.append(f"{width},{height - float(run / top) * height:.1f}")
    budget_y = None if budget is None else round(height - float(budget / top) * height, 1)
    return {"width": width, "height": height, "line": " ".join(xy), "budget_y": budget_y, "top": top,
            "start": start, "end": end}
