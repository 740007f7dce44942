"""The worker pages: join by invite link, the home page with one's own progress, the next page,
submitting it (and getting the next), handing it back, screening tests.

Every POST carries the session's CSRF token. A worker only ever sees their own assignments: any
other id is "not found". Submitting twice (double click, replay, back button) stores once.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from taskserver import prolific, queue, render, team
from taskserver.forms import FormError
from taskserver.market import MarketError
from taskserver.models import Assignment, Pool, WebSession, Worker
from taskserver.security import SESSION_COOKIE, digest, new_token, same

router = APIRouter(include_in_schema=False)


def page(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(request, template, context, status_code=status)


def message(request: Request, heading: str, text: str, status: int = 200, back: str | None = "/work",
            **context) -> HTMLResponse:
    return page(request, "message.html", status, heading=heading, message=text, back=back, **context)


def start_session(request: Request, worker_id: str | None, response: Response) -> None:
    now, settings = request.app.state.clock(), request.app.state.settings
    sid = new_token()
    with request.app.state.db.write() as s:
        s.add(WebSession(id_hash=digest(sid), worker_id=worker_id, csrf=new_token(), created_at=now,
                         expires_at=now + timedelta(hours=settings.session_hours)))
    response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="lax", secure=settings.secure_cookies,
                        max_age=int(settings.session_hours * 3600), path="/")


def session_of(request: Request, ops: bool = False) -> WebSession | None:
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid:
        return None
    with request.app.state.db.read() as s:
        row = s.get(WebSession, digest(sid))
        if row is None or row.expires_at <= request.app.state.clock() or (row.worker_id is None) != ops:
            return None
        if not ops:
            worker = s.get(Worker, row.worker_id)
            if worker is None or worker.revoked_at is not None:
                return None
        return row


class NoSession(Exception):
    pass


def worker_session(request: Request) -> tuple[WebSession, str]:
    row = session_of(request)
    if row is None:
        raise NoSession
    with request.app.state.db.read() as s:
        return row, s.get(Worker, row.worker_id).name


async def checked_form(request: Request, session: WebSession) -> list[tuple[str, str]] | None:
    form = await request.form()
    pairs = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    token = next((v for k, v in pairs if k == "csrf"), None)
    if not same(token, session.csrf):
        return None
    return [(k, v) for k, v in pairs if k != "csrf"]


def csrf_refused(request: Request) -> HTMLResponse:
    return message(request, "Please try again", "This form has expired or did not come from this site. "
                   "Go back to your work and try again.", status=403)


@router.get("/")
def root(request: Request):
    if session_of(request) is not None:
        return RedirectResponse("/work", status_code=303)
    return message(request, "Welcome", "Open the invite link you were sent to start working.", back=None)


@router.get("/join/{token}")
def join(token: str, request: Request):
    host = request.client.host if request.client else "?"
    if not request.app.state.logins.allow(host):
        return message(request, "Too many attempts", "Too many sign-in attempts from here; wait a minute.",
                       status=429, back=None)
    with request.app.state.db.read() as s:
        worker = team.worker_for_token(s, token)
    if worker is None:
        return message(request, "Invite link not valid", "This invite link is not valid: it may have been "
                       "revoked or mistyped. Ask for a new one.", status=404, back=None)
    response = RedirectResponse("/work", status_code=303)
    start_session(request, worker.id, response)
    return response


@router.get("/work")
def home(request: Request):
    session, name = worker_session(request)
    now = request.app.state.clock()
    with request.app.state.db.read() as s:
        mine = queue.active(s, session.worker_id, now)
        context = {"progress": queue.progress(s, session.worker_id),
                   "screenings": queue.screenings_for(s, session.worker_id, now),
                   "left": queue.work_left(s, session.worker_id, now), "resume": mine.id if mine else None}
    return page(request, "home.html", worker_name=name, csrf=session.csrf, **context)


@router.post("/work/next")
async def take_next(request: Request):
    session, _ = worker_session(request)
    if await checked_form(request, session) is None:
        return csrf_refused(request)
    return _to_next(request, session.worker_id)


def _to_next(request: Request, worker_id: str) -> RedirectResponse:
    with request.app.state.db.write() as s:
        a = queue.next_page(s, worker_id, request.app.state.clock())
    return RedirectResponse(f"/work/page/{a.id}" if a else "/work", status_code=303)


def _show(request: Request, session: WebSession, name: str, assignment_id: str, status: int = 200,
          error: FormError | None = None, pairs: list[tuple[str, str]] | None = None) -> HTMLResponse:
    with request.app.state.db.read() as s:
        a, pg, batch = queue.own_assignment(s, session.worker_id, assignment_id)
    if a.state != "reserved":
        text = ("This page was already received. Thank you!" if a.state in queue.DONE
                else "You handed this page back.")
        return message(request, "Nothing to do here", text, worker_name=name)
    values: dict[str, list[str]] = {}
    for k, v in pairs or []:
        values.setdefault(k, []).append(v)
    items = render.item_views(pg.items)
    return page(request, "page.html", status, worker_name=name, csrf=session.csrf, assignment_id=a.id,
                title=batch.spec["title"], description=batch.spec.get("description", ""),
                instructions=batch.spec.get("instructions", ""), deadline=a.deadline, items=items,
                shortcuts=any(i["shortcuts"] for i in items), error=error, values=values)


@router.get("/work/page/{assignment_id}")
def show(assignment_id: str, request: Request):
    session, name = worker_session(request)
    return _show(request, session, name, assignment_id)


@router.post("/work/page/{assignment_id}")
async def submit(assignment_id: str, request: Request):
    session, name = worker_session(request)
    pairs = await checked_form(request, session)
    if pairs is None:
        return csrf_refused(request)
    code = None
    try:
        with request.app.state.db.write() as s:
            outcome = queue.submit(s, session.worker_id, assignment_id, pairs, request.app.state.clock())
            if outcome.kind == "stored":
                code = prolific.needs_completion(s, s.get(Assignment, assignment_id))
    except FormError as exc:
        return _show(request, session, name, assignment_id, status=400, error=exc, pairs=pairs)
    if outcome.kind == "again":
        return message(request, "Already received", outcome.message, status=200, worker_name=name)
    if outcome.kind == "refused":
        return message(request, "Not needed", outcome.message, status=409, worker_name=name)
    if code is not None:
        return _complete_on_prolific(request, assignment_id, code, name)
    return _to_next(request, session.worker_id)


# --------------------------------------------------------------------------- Prolific participants
@router.get("/prolific/{lane_id}")
def prolific_entry(lane_id: str, request: Request):
    """A Prolific participant arriving from the study: one session, one page (see taskserver.prolific)."""
    q = request.query_params
    pid, study, session_id = q.get("PROLIFIC_PID", ""), q.get("STUDY_ID", ""), q.get("SESSION_ID", "")
    link: prolific.ProlificLink | None = request.app.state.prolific
    if link is None:
        return message(request, "Not available", "This server does not take Prolific participants.",
                       status=404, back=None)
    if not all(prolific.ID.fullmatch(v) for v in (pid, study, session_id)):
        return message(request, "Link not valid", "This link lacks its Prolific details. Open the study "
                       "from Prolific again.", status=400, back=None)
    with request.app.state.db.read() as s:
        prolific.lane_for_study(s, lane_id, study)
        mine = prolific.held(s, session_id)
    if mine is not None and mine.worker_id != pid:
        return message(request, "Link not valid", "This session belongs to someone else.", status=403, back=None)
    if mine is None or mine.state == "reserved":  # a page not yet in: the session must still be active
        try:
            sub = link.submission(session_id)
        except prolific.Unavailable:
            return message(request, "Please try again", "Prolific could not be reached to check your session. "
                           "Reload this page in a minute.", status=503, back=None)
        if not sub or sub.get("participant") != pid or sub.get("study_id") != study or sub.get("status") != "ACTIVE":
            if mine is not None:  # returned or timed out on Prolific: its page goes to someone else
                with request.app.state.db.write() as s:
                    queue.release(s, pid, mine.id)
            return message(request, "Link not valid", "Prolific does not know this session as an active one of "
                           "yours. Open the study from Prolific again.", status=403, back=None)
    if mine is None:
        with request.app.state.db.write() as s:
            lane = prolific.lane_for_study(s, lane_id, study)
            mine = prolific.enter(s, lane, pid, session_id, request.app.state.clock())
        if mine is None:
            return message(request, "No page left for you", "There is no page left for you in this study "
                           "right now. Please return the study on Prolific, so that your place goes to someone "
                           "else.", back=None)
    response = RedirectResponse(f"/work/page/{mine.id}", status_code=303)
    start_session(request, pid, response)
    return response


def _complete_on_prolific(request: Request, assignment_id: str, code: str, name: str) -> HTMLResponse:
    link = request.app.state.prolific
    outcome = "ACTIVE"
    try:
        with request.app.state.db.read() as s:
            session_id = s.get(Assignment, assignment_id).external_id
        outcome = link.complete(session_id, code) if link is not None else outcome
    except prolific.Unavailable:
        pass  # stays pending: the next requester fetch tries again
    if outcome != "ACTIVE":
        with request.app.state.db.write() as s:
            prolific.mark(s, {assignment_id: outcome})
    if outcome not in ("completed", "ACTIVE"):
        return message(request, "Session closed", f"Prolific holds this session as {outcome.lower()}, so these "
                       "answers cannot count towards it. Take the study again from Prolific to do another page.",
                       status=409, worker_name=name, back=None)
    return message(request, "Thank you", "Your answers are in and your submission is complete on Prolific. "
                   "You may close this tab; to do another page, take the study again from Prolific.",
                   worker_name=name, back=None)


@router.post("/work/page/{assignment_id}/release")
async def release(assignment_id: str, request: Request):
    session, _ = worker_session(request)
    if await checked_form(request, session) is None:
        return csrf_refused(request)
    with request.app.state.db.write() as s:
        queue.release(s, session.worker_id, assignment_id)
    return RedirectResponse("/work", status_code=303)


def _screening(request: Request, session: WebSession, pool_id: str) -> Pool:
    with request.app.state.db.read() as s:
        pool = s.get(Pool, pool_id)
        if pool is None or pool.screening is None:
            raise MarketError(404, "NotFound", "no such screening test")
        return pool


@router.get("/screening/{pool_id}")
def screening(pool_id: str, request: Request):
    session, name = worker_session(request)
    pool = _screening(request, session, pool_id)
    with request.app.state.db.read() as s:
        when = queue.retry_at(s, pool, session.worker_id, request.app.state.clock())
    if when is not None:
        return message(request, "Not yet", _retry_text(when), worker_name=name)
    return page(request, "screening.html", worker_name=name, csrf=session.csrf, pool=pool, test=pool.screening)


def _retry_text(when) -> str:
    if when is None:
        return "You may take it again now."
    if when.year == 9999:
        return "You did not pass this test, and it cannot be taken again."
    return f"You did not pass this test. You may take it again after {when:%Y-%m-%d %H:%M} UTC."


@router.post("/screening/{pool_id}")
async def take_screening(pool_id: str, request: Request):
    session, name = worker_session(request)
    pairs = await checked_form(request, session)
    if pairs is None:
        return csrf_refused(request)
    pool = _screening(request, session, pool_id)
    now = request.app.state.clock()
    with request.app.state.db.write() as s:
        when = queue.retry_at(s, pool, session.worker_id, now)
        if when is not None:
            return message(request, "Not yet", _retry_text(when), status=409, worker_name=name)
        attempt = queue.take_screening(s, session.worker_id, pool, pairs, now)
        after = queue.retry_at(s, pool, session.worker_id, now)
    if attempt.passed:
        return message(request, "Passed", f"You passed with {attempt.score}%. New work is open to you.",
                       worker_name=name)
    return message(request, "Not passed", f"You scored {attempt.score}%. " + _retry_text(after), worker_name=name)


@router.post("/logout")
async def logout(request: Request):
    row = session_of(request)
    if row is not None and await checked_form(request, row) is not None:
        with request.app.state.db.write() as s:
            gone = s.get(WebSession, row.id_hash)
            if gone is not None:
                s.delete(gone)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
