"""The local Prolific marketplace: a Prolific-compatible API server and the task server it sends
participants to, with simulated participants who work through both.

``Server(clock=, crowd=, faults=, port=, balance=)`` is the API (``url``); it starts its own local
task server (``taskserver_url``, on ``port + 1`` when ``port`` is given; requester token ``local``)
set up to check and complete Prolific sessions against this API. Faults apply to the Prolific API. A
simulated participant sees the active studies whose places, filters (participant-group allow and
block lists) and submission limit let them in, starts a submission, opens the study URL on the task
server as a browser would (``PROLIFIC_PID``, ``STUDY_ID``, ``SESSION_ID`` filled in), answers the
page, and posts it; the task server then completes the submission through this API. One who walks
away returns the submission; one who finds no page returns it too. Submissions past
``maximum_allowed_time`` time out.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from connectors.local.clock import SimClock
from connectors.local.crowd import Crowd, Job, Offer, SimWorker
from connectors.local.faults import FaultConfig
from connectors.local.http import LocalServer, Request, Response
from connectors.local.inhouse import Server as TaskServer
from connectors.local.inhouse.team import post_answers, read_page
from connectors.local.prolific.api import Api
from connectors.local.prolific.state import ProlificError, ProlificState

LOCAL_TOKEN = "local"


class Server(LocalServer):
    provider = "prolific"

    def __init__(self, clock: SimClock, crowd: Crowd, faults: FaultConfig | None = None, port: int = 0,
                 balance: Decimal = Decimal("10000.00"), taskserver_port: int = 0, rate_limit: int = 200):
        super().__init__(clock, crowd, faults=faults, port=port, balance=balance)
        self.state = ProlificState(int(Decimal(balance) * 100))
        self.api = Api(self.state, clock.now, token=LOCAL_TOKEN, rate_limit=rate_limit)
        # On a given port the task server takes the next one (8768 -> 8769, the connector's local
        # defaults); on a free port, another free one.
        self.taskserver_port = taskserver_port or (port + 1 if port else 0)
        self.tasks: TaskServer | None = None
        self._nothing: dict[tuple[str, str], int] = {}  # (participant, study) -> version when no page was left

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> Server:
        super().start()
        if self.tasks is None:
            self.tasks = TaskServer(self.clock, self.crowd, port=self.taskserver_port, team=False,
                                    prolific_url=self.url, prolific_token=LOCAL_TOKEN)
            self.tasks.start()
        return self

    def stop(self) -> None:
        if self.tasks is not None:
            self.tasks.stop()
            self.tasks = None
        super().stop()

    @property
    def taskserver_url(self) -> str:
        return self.tasks.url

    # ----------------------------------------------------------------- the API
    def operation(self, request: Request) -> str:
        return self.api.operation(request.method, request.path)

    def handle(self, request: Request) -> Response:
        status, answer, headers = self.api.handle(request.method, request.path, request.query, request.headers,
                                                  request.body)
        return Response(status, json.dumps(answer).encode(), {"Content-Type": "application/json", **headers})

    def fault_response(self, kind: str, operation: str) -> Response:
        if kind == "throttle":
            err = ProlificError(429, "Request was throttled", "Expected available in 1 second.")
            return Response(429, json.dumps(err.body()).encode(), {"Content-Type": "application/json",
                                                                   "Retry-After": "0.05"})
        err = ProlificError(500, "Internal server error", "injected server fault", error_code=500)
        return Response(500, json.dumps(err.body()).encode(), {"Content-Type": "application/json"})

    def balance(self) -> Decimal:
        return Decimal(self.state.funded - self.state.charged) / 100

    # ----------------------------------------------------------------- crowd.Market
    def version(self) -> int:
        with self.lock:
            mine = self.state.version()
        return hash((mine, self._pages_version())) & 0x7FFFFFFF

    def _pages_version(self) -> int:
        """Changes whenever a page may have become available: pages added, extended or stopped,
        answers in, a reservation let go or run out (a participant who walked away frees the page only then)."""
        from sqlalchemy import func, select

        from taskserver.models import Assignment, PageRow

        with self.tasks.db.read() as s:
            pages = s.execute(select(func.max(PageRow.n), func.sum(PageRow.assignments),
                                     func.count(PageRow.stopped_at))).one()
            states = sorted(s.execute(select(Assignment.state, func.count()).group_by(Assignment.state)).all())
            lapsed = s.scalar(select(func.count(Assignment.id)).where(Assignment.state == "reserved",
                                                                      Assignment.deadline <= self.clock.now()))
        return hash((tuple(pages), tuple(map(tuple, states)), lapsed))

    def tick(self, now: datetime) -> None:
        with self.lock:
            self.state.time_out(now)

    def offers(self, worker: SimWorker, now: datetime) -> list[Offer]:
        version = self._pages_version()
        with self.lock:
            studies = self.state.open_to(worker.worker_id)
        return [Offer(ref=s) for s in studies if self._nothing.get((worker.worker_id, s)) != version]

    def accept(self, worker: SimWorker, offer: Offer, now: datetime) -> Job | None:
        with self.lock:
            sub = self.state.start(offer.ref, worker.worker_id, now)
            if sub is None:
                return None
            url = self.state.external_url(offer.ref, sub)
        client = httpx.Client(base_url=self.taskserver_url, follow_redirects=True, timeout=30)
        job = None
        try:
            r = client.get(url)
            if r.status_code == 200:
                job = read_page(str(r.url.path), r.text)
        except httpx.HTTPError:
            job = None
        if job is None:
            client.close()
            self._nothing[(worker.worker_id, offer.ref)] = self._pages_version()
            with self.lock:
                self.state.leave(sub.id)
            return None
        job.handle |= {"client": client, "submission": sub.id}
        return job

    def submit(self, worker: SimWorker, job: Job, answers: list[dict[str, Any]], now: datetime) -> None:
        client: httpx.Client = job.handle["client"]
        try:
            post_answers(client, worker, job, answers)
        finally:
            client.close()

    def abandon(self, worker: SimWorker, job: Job, now: datetime) -> None:
        job.handle["client"].close()
        with self.lock:
            self.state.leave(job.handle["submission"])

