"""What keeps the site safe on the open internet: secrets hashed at rest, sessions, CSRF tokens,
login rate limits, size-limited bodies, and the headers every response carries.

- Invite tokens and session ids are random (``secrets``), shown once, and kept only as SHA-256.
- A session cookie is ``HttpOnly`` and ``SameSite=Lax`` (``Secure`` behind https); every form carries
  the session's CSRF token, checked in constant time on each POST.
- Logins (invite links, the ops token form) are limited per client address per minute.
- ``Content-Security-Policy`` allows scripts, styles and images from this site only, no inline
  script, no framing, no plug-ins; item text is escaped by Jinja and never goes through ``innerHTML``.
- The access log prints paths with invite tokens cut out, and never headers (bearer tokens).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import defaultdict, deque

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("taskserver.access")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; connect-src 'self'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
           (b"cache-control", b"no-store")]
SESSION_COOKIE = "cb_session"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


class RateLimiter:
    """At most ``per_minute`` attempts per key in any 60 seconds (a sliding window)."""

    def __init__(self, per_minute: int, clock=time.monotonic):
        self.per_minute, self.clock = per_minute, clock
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            hits = self._hits[key]
            while hits and hits[0] <= now - 60:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return False
            hits.append(now)
            return True


def redact(path: str) -> str:
    return "/join/…" if path.startswith("/join/") else path


class Guard:
    """ASGI middleware: security headers on every response, bodies over ``max_body`` refused with 413
    before they are read into memory, and an access log line that holds no secret."""

    def __init__(self, app: ASGIApp, max_body: int):
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _too_large(send)
            return
        seen = 0
        status = {"code": 0}

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge
            return message

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + HEADERS
            await send(message)

        try:
            await self.app(scope, limited, with_headers)
        except BodyTooLarge:
            await _too_large(send)
        log.info("%s %s %s", scope["method"], redact(scope["path"]), status["code"] or 413)


class BodyTooLarge(Exception):
    pass


async def _too_large(send: Send) -> None:
    body = b'{"error":{"code":"TooLarge","message":"the request body is too large"}}'
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                + HEADERS})
    await send({"type": "http.response.body", "body": body})
