"""A small threaded HTTP server base for the local marketplaces.

API
---
``LocalServer(clock, crowd, faults=None, port=0, balance=Decimal("10000.00"))`` is subclassed once
per provider. A subclass sets ``provider`` and implements:

- ``operation(request: Request) -> str``: the API operation a request is (counted in ``calls``
  and handed to the fault injector), e.g. ``"CreateHIT"`` or ``"POST /api/v1/tasks"``;
- ``handle(request: Request) -> Response``: the service itself; called with ``self.lock`` held;
- ``fault_response(kind: str, operation: str) -> Response``: how the service answers an injected
  ``"error"`` or ``"throttle"``;
- ``balance() -> Decimal`` and the ``crowd.Market`` methods (``version``, ``tick``, ``offers``,
  ``accept``, ``submit``, ``abandon``), so ``CrowdRunner`` can drive the simulated crowd over it.

The base gives ``start()`` (binds 127.0.0.1, port 0 = a free port, serves in a daemon thread),
``stop()``, ``url``, ``calls`` (``collections.Counter`` per operation), ``lock`` (one ``RLock`` for
all state) and fault injection before ``handle`` (latency, server error, throttle, or a dropped
connection closed without any answer).

Why stdlib ``http.server``: the servers need nothing beyond request/response over loopback, and
no extra dependency keeps ``crowd local serve`` cheap to start anywhere.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from connectors.local.clock import SimClock
from connectors.local.crowd import Crowd
from connectors.local.faults import FaultConfig, FaultInjector


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass  # requests carry tokens in headers; never print them

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        req = Request(
            self.command,
            split.path,
            parse_qs(split.query),
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )
        resp = self.server.owner.dispatch(req)
        if resp is None:  # injected dropped connection: no status line at all
            self.close_connection = True
            return
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: LocalServer


class LocalServer:
    provider = "base"

    def __init__(
        self,
        clock: SimClock,
        crowd: Crowd,
        faults: FaultConfig | None = None,
        port: int = 0,
        balance: Decimal = Decimal("10000.00"),
    ):
        self.clock, self.crowd = clock, crowd
        self.faults = FaultInjector(faults)
        self.port = port
        self.initial_balance = Decimal(balance)
        self.calls: Counter = Counter()
        self.lock = threading.RLock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- to implement
    def operation(self, request: Request) -> str:
        raise NotImplementedError

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def fault_response(self, kind: str, operation: str) -> Response:
        raise NotImplementedError

    # ----------------------------------------------------------------- plumbing
    def dispatch(self, request: Request) -> Response | None:
        op = self.operation(request)
        with self.lock:
            self.calls[op] += 1
        fault = self.faults.decide(op)
        if fault.latency_s:
            time.sleep(fault.latency_s)
        if fault.kind == "drop":
            return None
        if fault.kind in ("error", "throttle"):
            return self.fault_response(fault.kind, op)
        with self.lock:
            response = self.handle(request)
        return None if fault.kind == "lose" else response

    @property
    def url(self) -> str:
        if not self._httpd:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> LocalServer:
        if self._httpd:
            return self
        self._httpd = _Server(("127.0.0.1", self.port), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"local-{self.provider}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread:
            self._thread.join(timeout=5)
            self._thread = None
