"""A local Toloka: toloka-kit 1.2.3's REST API on 127.0.0.1 with a simulated crowd.

``Server(clock=, crowd=, faults=, port=, balance=, id_seed=None)`` is what
``connectors.local.start_local("toloka")`` builds (``id_seed``: ids repeat across runs only when
given; by default every start draws fresh ones): the shared HTTP plumbing
(:class:`connectors.local.http.LocalServer`: request counting, fault injection) around
:class:`TolokaApi` (routes) over :class:`TolokaState` (semantics), plus the
``crowd.Market`` adapter through which the simulated workers take task suites and submit them.

An exam pool (mixer with only golden tasks) is offered as a "test": its known solutions play
the part of a qualification test's answer key, so careful workers know those answers; so is
a training (its hints teach the answers). Each simulated worker has a Toloker profile
(``profiles.worker_profile``) that pool filters select on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

from connectors.local.clock import SimClock
from connectors.local.crowd import Crowd, Job, Offer, SimWorker
from connectors.local.faults import FaultConfig
from connectors.local.http import LocalServer, Request, Response

from .api import TolokaApi, dumps
from .errors import ApiError, internal, throttled
from .market import sim_task
from .profiles import worker_profile
from .state import TolokaState
from .threads import attach_files
from .webhooks import Webhooks

__all__ = ["Server", "TolokaApi", "TolokaState"]


class Server(LocalServer):
    provider = "toloka"
    retry_after_s = 1  # what a 429 asks the client to wait

    def __init__(
        self,
        clock: SimClock,
        crowd: Crowd,
        faults: FaultConfig | None = None,
        port: int = 0,
        balance: Decimal = Decimal("10000.00"),
        id_seed: int | None = None,
    ):
        super().__init__(clock, crowd, faults=faults, port=port, balance=balance)
        self.state = TolokaState(clock.now, balance=Decimal(balance), seed=crowd.seed, id_seed=id_seed)
        self.state.lock = self.lock
        self.profiles = {w.worker_id: worker_profile(w, crowd.seed) for w in crowd.workers}
        self.webhooks = Webhooks(self.state)
        self.state.on_event = self.webhooks.notify
        self.api = TolokaApi(self.state, self.profiles, self.webhooks)

    # ----------------------------------------------------------------- HTTP
    def operation(self, request: Request) -> str:
        found = self.api.route(request.method, request.path)
        return found[0] if found else f"{request.method} unknown"

    def handle(self, request: Request) -> Response:
        params = {k: v[-1] for k, v in request.query.items()}
        self.api.base_url = self.url
        status, headers, body = self.api.handle(
            request.method, request.path, params, request.body, request.headers
        )
        if request.method != "GET" and status < 300:
            self.state.version += 1
        return Response(status, body, headers)

    def fault_response(self, kind: str, operation: str) -> Response:
        err: ApiError = throttled(self.retry_after_s) if kind == "throttle" else internal()
        return Response(err.status, dumps(err.body()), {"Content-Type": "application/json", **err.headers})

    def balance(self) -> Decimal:
        return self.state.balance

    # ----------------------------------------------------------------- crowd.Market
    @contextmanager
    def _at(self, now: datetime) -> Iterator[None]:
        """Run state code at the crowd's event time rather than the clock's."""
        with self.lock:
            saved, self.state.now = self.state.now, (lambda: now)
            try:
                yield
            finally:
                self.state.now = saved

    def version(self) -> int:
        return self.state.version

    def tick(self, now: datetime) -> None:
        with self._at(now):
            self.state.tick()

    def stop(self) -> None:
        self.webhooks.stop()
        super().stop()

    def _profile(self, worker: SimWorker) -> dict[str, Any]:
        return self.profiles[worker.worker_id]

    def _is_exam(self, pool: dict[str, Any]) -> bool:
        """A training, or a pool of golden tasks only: its known solutions are what a careful
        worker knows (a training's hints teach them)."""
        if pool["_kind"] == "trainings":
            return True
        mixer = pool.get("mixer_config") or {}
        return not mixer.get("real_tasks_count") and bool(mixer.get("golden_tasks_count"))

    def offers(self, worker: SimWorker, now: datetime) -> list[Offer]:
        with self._at(now):
            return [
                Offer(pool["id"], "test" if self._is_exam(pool) else "work")
                for pool in self.state.open_pools()
                if self.state.eligible(pool, worker.worker_id, self._profile(worker))
                and self.state.has_work(pool, worker.worker_id)
            ]

    def accept(self, worker: SimWorker, offer: Offer, now: datetime) -> Job | None:
        with self._at(now):
            a = self.state.take(worker.worker_id, offer.ref, self._profile(worker))
            if a is None:
                return None
            pool = self.state.pool(a["pool_id"])
            project = self.state.store["projects"][pool["project_id"]]
            exam = self._is_exam(pool)
            tasks = []
            for t in a["tasks"]:
                known = self.state.store["tasks"][t["id"]].get("known_solutions") if exam else None
                tasks.append(sim_task(project, t, truth=known[0].get("output_values") if known else None))
            return Job(ref=a["task_suite_id"], handle=a["id"], tasks=tasks, kind=offer.kind)

    def submit(self, worker: SimWorker, job: Job, answers: list[dict[str, Any]], now: datetime) -> None:
        with self._at(now):
            try:
                a = self.state.submit(job.handle, answers)
            except ApiError:
                return  # expired meanwhile: the worker's late answer is lost, as on Toloka
            project = self.state.store["projects"][self.state.pool(a["pool_id"])["project_id"]]
            attach_files(self.state, a, project["task_spec"]["output_spec"])

    def abandon(self, worker: SimWorker, job: Job, now: datetime) -> None:
        with self._at(now):
            try:
                self.state.skip(job.handle)
            except ApiError:
                pass
