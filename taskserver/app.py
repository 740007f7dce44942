"""Assembling the task server: ``create_app`` (for tests, the local marketplace and ASGI hosts) and
``run`` (``crowd serve``: uvicorn in this process).

Errors come back in the face's own language: JSON ``{"error": ...}`` under ``/api/``, a plain page
elsewhere. Interactive API docs are off (their page needs inline script, which the CSP forbids);
the OpenAPI document is at ``/openapi.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from taskserver import api, ops, pages
from taskserver.db import Database, open_database
from taskserver.market import MarketError
from taskserver.ops import OpsSource
from taskserver.prolific import ProlificLink
from taskserver.security import Guard, RateLimiter
from taskserver.settings import ServerSettings

HERE = Path(__file__).parent
VERSION = "1"


def wall_clock() -> datetime:
    return datetime.now(UTC)


def create_app(settings: ServerSettings | None = None, *, db: Database | None = None,
               clock: Callable[[], datetime] = wall_clock, ops_source: OpsSource | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    app = FastAPI(title="crowdbridge task server", version=VERSION, docs_url=None, redoc_url=None,
                  description="The requester API of crowdbridge's own task server (`crowd serve`).")
    app.state.settings, app.state.clock, app.state.ops_source = settings, clock, ops_source
    app.state.db = db or open_database(settings.database_url)
    app.state.logins = RateLimiter(settings.login_attempts_per_minute)
    app.state.prolific = (ProlificLink(settings.prolific_url, settings.prolific_token.get_secret_value())
                          if settings.prolific_token else None)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    app.state.templates = Jinja2Templates(env=env)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(ops.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _errors(app)
    app.add_middleware(Guard, max_body=settings.max_body_bytes)
    return app


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, status: int, code: str, text: str, field: str | None = None):
    if _is_api(request):
        return JSONResponse({"error": {"code": code, "message": text, "field": field}}, status_code=status)
    return pages.message(request, "Sorry", text, status=status, back="/work" if status != 401 else None)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(MarketError)
    async def market_error(request: Request, exc: MarketError):
        return _error(request, exc.status, exc.code, exc.message, exc.field)

    @app.exception_handler(pages.NoSession)
    async def no_session(request: Request, exc: pages.NoSession):
        return _error(request, 401, "Unauthorized", "You are not signed in: open your invite link to start.")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(request, 400, "ValidationError", f"{where or 'request'}: {first.get('msg', 'invalid')}",
                      where or None)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        return _error(request, exc.status_code, code, str(exc.detail))


def run(settings: ServerSettings, ops_source: OpsSource | None = None, forwarded_allow_ips: str | None = None,
        ready: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted (SIGINT/SIGTERM), on ``settings.host:port``."""
    import uvicorn

    app = create_app(settings, ops_source=ops_source)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, access_log=False, log_level="warning",
                            proxy_headers=forwarded_allow_ips is not None,
                            forwarded_allow_ips=forwarded_allow_ips, server_header=False)
    server = uvicorn.Server(config)
    if ready is not None:
        ready(f"http://{settings.host}:{settings.port}")
    server.run()
