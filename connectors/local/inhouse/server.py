"""The local task server: ``taskserver.app`` under uvicorn in a daemon thread, counted and faulted."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import SecretStr

from connectors.local.clock import SimClock
from connectors.local.crowd import Crowd, Job, Offer, SimWorker
from connectors.local.faults import FaultConfig, FaultInjector
from connectors.local.inhouse.team import Team
from taskserver import market
from taskserver.app import create_app
from taskserver.db import open_database
from taskserver.settings import ServerSettings

LOCAL_TOKEN = "local"
_ID = re.compile(r"/[A-Z][0-9A-F]{16}(?=/|$)")


def operation(method: str, path: str) -> str:
    """``POST /api/v1/lanes/{id}/pages``: the API call a request is, ids folded."""
    return f"{method} {_ID.sub('/{id}', path)}"


class _Counted:
    """ASGI middleware on the requester API: count each call, inject the configured faults."""

    def __init__(self, app: Any, owner: Server):
        self.app, self.owner = app, owner

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        op = operation(scope["method"], scope["path"])
        with self.owner.lock:
            self.owner.calls[op] += 1
        fault = self.owner.faults.decide(op)
        if fault.latency_s:
            await asyncio.sleep(fault.latency_s)
        if fault.kind in ("error", "drop"):
            await _json(send, 500, {"error": {"code": "InternalError", "message": "injected server fault"}})
            return
        if fault.kind == "throttle":
            await _json(send, 429, {"error": {"code": "Throttled", "message": "too many requests"}},
                        [(b"retry-after", b"0.05")])
            return
        if fault.kind == "lose":  # do the work, then lose the answer
            async def swallow(message: dict) -> None:
                return None

            await self.app(scope, receive, swallow)
            await _json(send, 500, {"error": {"code": "InternalError", "message": "injected lost response"}})
            return
        await self.app(scope, receive, send)


async def _json(send: Any, status: int, body: dict, headers: list | None = None) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
                + (headers or [])})
    await send({"type": "http.response.body", "body": data})


class Server:
    provider = "inhouse"

    def __init__(self, clock: SimClock, crowd: Crowd, faults: FaultConfig | None = None, port: int = 0,
                 balance: Decimal = Decimal("10000.00"), database_url: str | None = None,
                 team: bool = True, **settings: Any):
        """``database_url``: the server's database (default: a new SQLite file in a temporary folder);
        ``team``: invite the crowd as the server's own team; ``settings``: more ``ServerSettings``."""
        self.clock, self.crowd, self.port = clock, crowd, port
        self.faults = FaultInjector(faults)
        self.calls: Counter = Counter()
        self.lock = threading.RLock()
        self._dir = tempfile.mkdtemp(prefix="crowd-inhouse-")
        self.settings = ServerSettings(database_url=database_url or f"sqlite:///{self._dir}/market.db",
                                       requester_token=SecretStr(LOCAL_TOKEN), budget=Decimal(balance),
                                       login_attempts_per_minute=1_000_000, **settings)
        self.with_team = team
        self.db = open_database(self.settings.database_url)
        self.app = create_app(self.settings, db=self.db, clock=clock.now)
        self._uvicorn: Any = None
        self._thread: threading.Thread | None = None
        self.team: Team | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(_Counted(self.app, self), access_log=False, log_level="warning",
                                lifespan="off", server_header=False, timeout_keep_alive=30)
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._uvicorn.run, kwargs={"sockets": [sock]},
                                        name="local-inhouse", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._uvicorn.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the local task server did not start")
            time.sleep(0.01)
        if self.with_team:
            self.team = Team(self.url, self.db, self.crowd, self.clock)
        return self

    def stop(self) -> None:
        if self.team is not None:
            self.team.close()
            self.team = None
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
            if self._thread:
                self._thread.join(timeout=5)
            self._uvicorn = None
        self.db.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def balance(self) -> Decimal:
        with self.db.read() as s:
            return market.balance(s, self.settings.budget, self.settings.currency).available

    # ----------------------------------------------------------------- crowd.Market, by the team
    def version(self) -> int:
        return self.team.version()

    def tick(self, now: datetime) -> None:
        return None  # reservations lapse and work is auto-approved by the server's own clock

    def offers(self, worker: SimWorker, now: datetime) -> list[Offer]:
        return self.team.offers(worker)

    def accept(self, worker: SimWorker, offer: Offer, now: datetime) -> Job | None:
        return self.team.accept(worker, offer)

    def submit(self, worker: SimWorker, job: Job, answers: list[dict[str, Any]], now: datetime) -> None:
        self.team.submit(worker, job, answers)

    def abandon(self, worker: SimWorker, job: Job, now: datetime) -> None:
        self.team.abandon(worker, job)
