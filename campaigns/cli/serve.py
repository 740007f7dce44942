"""``crowd serve`` (the task server) and ``crowd team`` (invite, revoke, list, payouts).

The server's settings come from ``CROWD_SERVE_*`` (see ``taskserver.settings``) and the flags
here; ``crowd team`` opens the same database the server uses (``CROWD_SERVE_DATABASE_URL`` or
``--server-db``), so it works whether or not the server is running.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import typer

from campaigns.cli.app import JsonOpt, app, emit_json, err, out, run

team_app = typer.Typer(help="Your own annotators on the task server: invite, revoke, list, payouts.",
                       no_args_is_help=True)
app.add_typer(team_app, name="team")

ServerDbOpt = typer.Option(None, "--server-db", help="The task server's database URL (default: "
                           "CROWD_SERVE_DATABASE_URL or sqlite:///./crowd-serve.db).")


def _settings(**overrides):
    from pydantic import ValidationError

    from campaigns.errors import CrowdError
    from taskserver.settings import ServerSettings

    try:
        base = ServerSettings()
        return base.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise CrowdError(f"CROWD_SERVE_{str(first['loc'][0]).upper()}: {first['msg']}") from None


def _check_db_url(url: str, *, must_exist: bool) -> None:
    from campaigns.errors import CrowdError
    from taskserver.db import DatabaseURLError, normalize_url

    try:
        u = normalize_url(url)
    except DatabaseURLError as exc:
        raise CrowdError(str(exc)) from None
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:"):
        path = Path(u.database)
        if must_exist and not path.exists():
            raise CrowdError(f"no task server database at {path} (invite someone first, or pass --server-db)")
        if not path.parent.exists():
            raise CrowdError(f"cannot create {path}: the folder {path.parent} does not exist")


@contextmanager
def _server_db(url: str | None, *, must_exist: bool = False):
    from taskserver.db import open_database

    settings = _settings(database_url=url)
    _check_db_url(settings.database_url, must_exist=must_exist)
    db = open_database(settings.database_url)
    try:
        yield settings, db
    finally:
        db.close()


def _market_errors(fn):
    from campaigns.errors import CrowdError
    from taskserver.market import MarketError

    try:
        return fn()
    except MarketError as exc:
        raise CrowdError(exc.message) from None


@app.command()
def serve(host: str | None = typer.Option(None, "--host", help="Address to listen on (default 127.0.0.1; "
                                          "behind a reverse proxy keep it local)."),
          port: int | None = typer.Option(None, "--port", min=0, max=65535, help="Port (default 8780)."),
          server_db: str | None = ServerDbOpt,
          public_url: str | None = typer.Option(None, "--public-url", help="The URL workers reach, used in "
                                                "invite links (https://... behind a TLS proxy)."),
          budget: str | None = typer.Option(None, "--budget", help="Money the requester may spend here "
                                            "(default: no limit)."),
          store: str | None = typer.Option(None, "--store", help="crowdbridge's store URL, for trust and "
                                           "campaign spend in the ops view (default: CROWD_DATABASE_URL if set)."),
          forwarded_allow_ips: str | None = typer.Option(None, "--forwarded-allow-ips", help="Proxies whose "
                                                         "X-Forwarded-For/-Proto headers are trusted, e.g. "
                                                         "127.0.0.1.")) -> None:
    """Run the task server: the requester API for `provider: inhouse` and the worker pages.

    Needs CROWD_SERVE_REQUESTER_TOKEN (the bearer token campaigns use, as CROWD_INHOUSE_TOKEN)."""
    import os

    from campaigns.errors import CrowdError

    def go() -> None:
        amount = None
        if budget is not None:
            try:
                amount = Decimal(budget)
            except InvalidOperation:
                raise CrowdError(f"--budget must be an amount such as 500.00, not {budget!r}") from None
            if not amount.is_finite() or amount < 0:
                raise CrowdError("--budget must be zero or more")
        settings = _settings(host=host, port=port, database_url=server_db, public_url=public_url, budget=amount)
        if settings.requester_token is None or len(settings.requester_token.get_secret_value()) < 16:
            raise CrowdError("set CROWD_SERVE_REQUESTER_TOKEN to a secret of 16+ characters, e.g. "
                             "export CROWD_SERVE_REQUESTER_TOKEN=$(python3 -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))')")
        _check_db_url(settings.database_url, must_exist=False)
        source = None
        store_url = store or os.environ.get("CROWD_DATABASE_URL")
        if store_url:
            from campaigns.reports.ops import StoreOps
            from campaigns.store.database import open_store

            source = StoreOps(open_store(store_url))
        from taskserver.app import run as run_server

        try:
            run_server(settings, ops_source=source, forwarded_allow_ips=forwarded_allow_ips,
                       ready=lambda url: err.print(f"task server on {url} (workers reach it at "
                                                   f"{settings.public_url}; ops view at /ops)", markup=False))
        except OSError as exc:
            raise CrowdError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from None

    run(go)


@team_app.command("invite")
def invite(name: str = typer.Argument(..., help="The annotator's name (shown to them, and to you)."),
           server_db: str | None = ServerDbOpt, as_json: bool = JsonOpt) -> None:
    """Print a new invite link for NAME (creating the worker on first use). Links are shown once."""
    from taskserver import team

    def go():
        with _server_db(server_db) as (settings, db), db.write() as s:
            inv = _market_errors(lambda: team.invite(s, name, datetime.now(UTC)))
            return {"worker_id": inv.worker_id, "name": inv.name, "link": inv.link(settings.public_url)}

    result = run(go)
    if as_json:
        emit_json(result)
    else:
        out.print(f"{result['name']} ({result['worker_id']}): {result['link']}", markup=False, soft_wrap=True)


@team_app.command("revoke")
def revoke(name: str = typer.Argument(...), server_db: str | None = ServerDbOpt) -> None:
    """Revoke NAME: every invite link stops working and every session ends."""
    from taskserver import team

    def go():
        with _server_db(server_db, must_exist=True) as (_, db), db.write() as s:
            return _market_errors(lambda: team.revoke(s, name, datetime.now(UTC))).id

    worker_id = run(go)
    out.print(f"revoked {name} ({worker_id})", markup=False)


@team_app.command("list")
def roster(server_db: str | None = ServerDbOpt, as_json: bool = JsonOpt) -> None:
    """The team: each worker's id, name, whether active, and pages done."""
    from taskserver import team

    def go():
        with _server_db(server_db, must_exist=True) as (_, db), db.read() as s:
            return team.roster(s)

    rows = run(go)
    if as_json:
        emit_json({"workers": rows})
        return
    for r in rows:
        out.print(f"{r['worker_id']}  {r['name']}  {'active' if r['active'] else 'revoked'}  {r['pages']} pages",
                  markup=False)


@team_app.command("payouts")
def payouts(server_db: str | None = ServerDbOpt,
            since: datetime | None = typer.Option(None, "--since", help="Only work approved and bonuses paid "
                                                  "from this UTC date/time on."),
            as_csv: bool = typer.Option(False, "--csv", help="CSV for whoever pays the team."),
            as_json: bool = JsonOpt) -> None:
    """What each worker is owed: rewards of approved pages plus bonuses."""
    from taskserver import team

    def go():
        with _server_db(server_db, must_exist=True) as (_, db), db.read() as s:
            return team.payouts(s, since.replace(tzinfo=UTC) if since else None)

    rows = run(go)
    if as_csv:
        typer.echo(team.payouts_csv(rows), nl=False)
    elif as_json:
        emit_json({"payouts": rows})
    else:
        for r in rows:
            out.print(f"{r['worker_id']}  {r['name']}  {r['approved_pages']} pages  rewards {r['rewards']}  "
                      f"bonuses {r['bonuses']}  total {r['total']}", markup=False)
