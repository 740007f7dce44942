"""Prolific participants on the task server: who may enter a study's lane, and telling Prolific that
a submission is complete.

A participant arrives at ``/prolific/{lane}`` with ``PROLIFIC_PID``, ``STUDY_ID`` and ``SESSION_ID``
(Prolific fills them into the study URL). The server asks Prolific whether that session exists,
belongs to that participant and study and is ACTIVE, so a made-up link gets no page. One session is
one page. When the page is in, the server completes the submission itself (``POST
/submissions/{id}/transition/`` COMPLETE with the study's researcher completion code): no code is
shown to the participant, so none can be forged, shared or lost. A completion that fails stays
``pending`` and is retried on each requester fetch until Prolific has it.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from taskserver import queue
from taskserver.market import MarketError
from taskserver.models import Assignment, Lane, PageRow, Worker

log = logging.getLogger(__name__)
ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
DONE_ON_PROLIFIC = {"AWAITING REVIEW", "APPROVED", "REJECTED", "PARTIALLY APPROVED"}


class Unavailable(Exception):
    """Prolific could not be asked (network, 429, 5xx after retries)."""


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and (exc.response.status_code == 429
                                                        or exc.response.status_code >= 500)


class ProlificLink:
    """The server's own small Prolific client: two calls, retried on 429/5xx/network with jitter."""

    def __init__(self, url: str, token: str, timeout_s: float = 10.0, attempts: int = 5):
        self._http = httpx.Client(base_url=url.rstrip("/") + "/api/v1", timeout=timeout_s,
                                  headers={"Authorization": f"Token {token}"})
        self._attempts = attempts

    def __repr__(self) -> str:  # the token is in the headers: never print them
        return "ProlificLink()"

    def _send(self, method: str, path: str, **kw) -> httpx.Response:
        @retry(retry=retry_if_exception(_transient), stop=stop_after_attempt(self._attempts),
               wait=wait_random_exponential(multiplier=0.05, max=2), reraise=True)
        def once() -> httpx.Response:
            resp = self._http.request(method, path, **kw)
            if resp.status_code == 429 or resp.status_code >= 500:
                resp.raise_for_status()
            return resp

        try:
            return once()
        except (httpx.TransportError, httpx.HTTPStatusError) as exc:
            raise Unavailable(str(exc)) from None

    def submission(self, session_id: str) -> dict | None:
        resp = self._send("GET", f"/submissions/{session_id}/")
        return resp.json() if resp.status_code == 200 else None

    def complete(self, session_id: str, code: str) -> str:
        """Complete the submission; returns ``completed`` once Prolific holds it as completed (a repeat
        is harmless: a session already past ACTIVE counts as done), else the state Prolific has it in
        (``RETURNED``, ``TIMED-OUT``: it will never take this answer; ``gone``: it has no such one)."""
        resp = self._send("POST", f"/submissions/{session_id}/transition/",
                          json={"action": "COMPLETE", "completion_code": code})
        if resp.status_code == 200:
            return "completed"
        now = self.submission(session_id)
        if now is None:
            return "gone"
        return "completed" if now.get("status") in DONE_ON_PROLIFIC else str(now.get("status"))

    def close(self) -> None:
        self._http.close()


def lane_for_study(s: Session, lane_id: str, study_id: str) -> Lane:
    lane = s.get(Lane, lane_id)
    if lane is None or lane.study_id is None or lane.study_id != study_id:
        raise MarketError(404, "NotFound", "This study link is not one this server serves.")
    return lane


def held(s: Session, session_id: str) -> Assignment | None:
    return s.scalar(select(Assignment).where(Assignment.external_id == session_id))


def enter(s: Session, lane: Lane, participant: str, session_id: str, now: datetime) -> Assignment | None:
    """The page for this Prolific session: the one it already holds, else a new reservation in the
    study's lane (the participant's older sessions let go first: Prolific has returned or timed them
    out), else None when no page is left for them."""
    if s.get(Worker, participant) is None:
        s.add(Worker(id=participant, name=f"prolific:{participant}", created_at=now))
        s.flush()
    for old in s.scalars(select(Assignment).where(Assignment.worker_id == participant,
                                                  Assignment.state == "reserved",
                                                  Assignment.external_id.is_not(None))):
        old.state = "released"
    a = queue.next_page(s, participant, now, study_lane=lane.id)
    if a is not None:
        a.external_id = session_id
    return a


def needs_completion(s: Session, assignment: Assignment) -> str | None:
    """The completion code to send for a just-submitted Prolific page (None: not a Prolific page)."""
    if assignment.external_id is None:
        return None
    assignment.external_state = "pending"
    page = s.get(PageRow, assignment.page_id)
    return s.get(Lane, page.lane_id).completion_code


def pending(s: Session) -> list[tuple[str, str, str]]:
    """(assignment id, session id, completion code) of every answer Prolific has not yet been told of."""
    rows = s.execute(select(Assignment.id, Assignment.external_id, Lane.completion_code)
                     .join(PageRow, PageRow.id == Assignment.page_id).join(Lane, Lane.id == PageRow.lane_id)
                     .where(Assignment.external_state == "pending"))
    return [(a, e, c) for a, e, c in rows]


def mark(s: Session, outcomes: dict[str, str]) -> None:
    """Record what Prolific made of each completion (assignment id -> ``complete``'s answer): a
    completed one is done; one Prolific will never take (returned, timed out) stops being retried."""
    for a in s.scalars(select(Assignment).where(Assignment.id.in_(list(outcomes)))):
        a.external_state = outcomes[a.id].lower()[:16]


def complete_pending(link: ProlificLink, db) -> int:
    """Tell Prolific of every pending completion; returns how many it now holds."""
    with db.read() as s:
        todo = pending(s)
    outcomes: dict[str, str] = {}
    for aid, session_id, code in todo:
        try:
            outcome = link.complete(session_id, code or "")
        except Unavailable as exc:
            log.warning("Prolific completion of a submission is still pending: %s", exc)
            break
        if outcome != "ACTIVE":  # still active yet refused: try again next time
            outcomes[aid] = outcome
    if outcomes:
        with db.write() as s:
            mark(s, outcomes)
    return sum(o == "completed" for o in outcomes.values())
