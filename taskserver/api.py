"""The requester API (JSON over HTTP, ``Authorization: Bearer <token>``): what ``connectors.inhouse``
needs and no more. Each route maps one ``market`` operation; errors are ``{"error": {"code",
"message", "field"}}`` with a status that says whether a retry can help (429/5xx) or not (4xx)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from taskserver import market, prolific, schemas
from taskserver.market import MarketError
from taskserver.security import same

bearer = HTTPBearer(auto_error=False)


def requester(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    token = request.app.state.settings.requester_token
    if creds is None or token is None or not same(creds.credentials, token.get_secret_value()):
        raise MarketError(401, "Unauthorized", "a valid requester token is needed (Authorization: Bearer ...)")


ERRORS = {400: {"model": schemas.ErrorOut}, 401: {"model": schemas.ErrorOut}, 404: {"model": schemas.ErrorOut},
          409: {"model": schemas.ErrorOut}}
router = APIRouter(prefix="/api/v1", dependencies=[Depends(requester)], responses=ERRORS, tags=["requester"])


def _now(request: Request):
    return request.app.state.clock()


def _db(request: Request):
    return request.app.state.db


@router.get("/balance", response_model=schemas.BalanceOut)
def get_balance(request: Request):
    settings = request.app.state.settings
    with _db(request).write() as s:
        market.auto_approve(s, _now(request))
        return market.balance(s, settings.budget, settings.currency)


@router.post("/pools", response_model=schemas.PoolOut)
def ensure_pool(body: schemas.PoolIn, request: Request):
    with _db(request).write() as s:
        pool = market.ensure_pool(s, body, _now(request))
        return schemas.PoolOut(id=pool.id, name=pool.name, screening=pool.screening is not None)


@router.post("/screenings", response_model=schemas.PoolOut)
def ensure_screening(body: schemas.ScreeningIn, request: Request):
    test = body.model_dump(mode="json", exclude={"name", "description"})
    with _db(request).write() as s:
        pool = market.ensure_pool(s, schemas.PoolIn(name=body.name, description=body.description), _now(request),
                                  screening=test)
        return schemas.PoolOut(id=pool.id, name=pool.name, screening=True)


@router.get("/pools/{pool_id}/members", response_model=list[schemas.MemberOut])
def list_members(pool_id: str, request: Request):
    with _db(request).read() as s:
        return [schemas.MemberOut(worker_id=m.worker_id, score=m.score) for m in market.members(s, pool_id)]


@router.put("/pools/{pool_id}/members/{worker_id}", response_model=schemas.MemberOut)
def grant(pool_id: str, worker_id: str, body: schemas.MemberIn, request: Request):
    with _db(request).write() as s:
        m = market.grant(s, pool_id, worker_id, body.score, _now(request))
        return schemas.MemberOut(worker_id=m.worker_id, score=m.score)


@router.delete("/pools/{pool_id}/members/{worker_id}", status_code=204)
def revoke(pool_id: str, worker_id: str, request: Request):
    with _db(request).write() as s:
        market.revoke(s, pool_id, worker_id)


@router.put("/blocks/{worker_id}", status_code=204)
def block(worker_id: str, body: schemas.ReasonIn, request: Request):
    with _db(request).write() as s:
        market.block(s, worker_id, body.reason, _now(request))


@router.delete("/blocks/{worker_id}", status_code=204)
def unblock(worker_id: str, request: Request):
    with _db(request).write() as s:
        market.unblock(s, worker_id)


@router.post("/batches", response_model=schemas.BatchOut)
def create_batch(body: schemas.BatchIn, request: Request):
    with _db(request).write() as s:
        return market.create_batch(s, body, _now(request))


@router.post("/lanes/{lane_id}/pages", response_model=list[schemas.PageOut])
def publish(lane_id: str, body: schemas.PagesIn, request: Request):
    with _db(request).write() as s:
        return market.publish(s, lane_id, body.pages, _now(request))


@router.get("/lanes/{lane_id}", response_model=schemas.LaneOut)
def get_lane(lane_id: str, request: Request):
    with _db(request).read() as s:
        return market.lane_out(s, lane_id)


@router.put("/lanes/{lane_id}/study", response_model=schemas.LaneOut)
def serve_as_study(lane_id: str, body: schemas.LaneStudyIn, request: Request):
    with _db(request).write() as s:
        market.serve_as_study(s, lane_id, body.study_id, body.completion_code)
        return market.lane_out(s, lane_id)


@router.get("/batches/{batch_id}/pages", response_model=list[schemas.PageOut])
def find_pages(batch_id: str, request: Request, page_id: list[str] | None = None):
    with _db(request).read() as s:
        return market.find_pages(s, batch_id, page_id or [])


@router.post("/batches/{batch_id}/assignments/query", response_model=schemas.AssignmentPage)
def fetch(batch_id: str, body: schemas.AssignmentQuery, request: Request):
    if request.app.state.prolific is not None:
        prolific.complete_pending(request.app.state.prolific, _db(request))
    with _db(request).write() as s:
        market.auto_approve(s, _now(request))
    with _db(request).read() as s:
        return market.fetch(s, batch_id, body, _now(request))


@router.post("/batches/{batch_id}/close", status_code=204)
def close(batch_id: str, body: schemas.CloseIn, request: Request):
    with _db(request).write() as s:
        market.close_batch(s, batch_id, body.pages, _now(request))


@router.get("/assignments/{assignment_id}", response_model=schemas.StatusOut)
def assignment_status(assignment_id: str, request: Request):
    with _db(request).write() as s:
        market.auto_approve(s, _now(request))
        a = market.review_target(s, assignment_id)
        return schemas.StatusOut(id=a.id, status=a.state)


@router.post("/assignments/{assignment_id}/approve", response_model=schemas.StatusOut)
def approve(assignment_id: str, body: schemas.ReviewIn, request: Request):
    with _db(request).write() as s:
        a = market.review(s, assignment_id, True, body.message, _now(request))
        return schemas.StatusOut(id=a.id, status=a.state)


@router.post("/assignments/{assignment_id}/reject", response_model=schemas.StatusOut)
def reject(assignment_id: str, body: schemas.ReviewIn, request: Request):
    if not (body.message or "").strip():
        raise MarketError(400, "MessageRequired", "a rejection needs a message for the worker", field="message")
    with _db(request).write() as s:
        a = market.review(s, assignment_id, False, body.message, _now(request))
        return schemas.StatusOut(id=a.id, status=a.state)


@router.post("/bonuses", response_model=schemas.BonusOut)
def pay_bonus(body: schemas.BonusIn, request: Request):
    with _db(request).write() as s:
        return market.pay_bonus(s, body, request.app.state.settings.budget, _now(request))


@router.get("/bonuses", response_model=list[schemas.BonusOut])
def list_bonuses(request: Request, assignment_id: str | None = None):
    with _db(request).read() as s:
        return market.bonuses(s, assignment_id)


@router.get("/pages/{page_id}", response_model=schemas.PageState)
def page_state(page_id: str, request: Request):
    with _db(request).read() as s:
        return market.page_state(s, market.get_page(s, page_id), _now(request))


@router.post("/pages/{page_id}/extend", response_model=schemas.PageState)
def extend(page_id: str, body: schemas.ExtendIn, request: Request):
    with _db(request).write() as s:
        page = market.extend(s, page_id, body.extra_assignments, body.if_assignments)
        return market.page_state(s, page, _now(request))


@router.post("/pages/{page_id}/stop", response_model=schemas.PageState)
def stop(page_id: str, request: Request):
    with _db(request).write() as s:
        return market.page_state(s, market.stop(s, page_id, _now(request)), _now(request))
