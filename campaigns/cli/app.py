"""The ``crowd`` command's frame: the Typer app, one-line errors, shared options, progress.

Exit codes: 0 ok; 1 user error (one line on stderr, no traceback); 2 provider unreachable
after retries. Read commands take ``--json`` (one JSON object on stdout).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from typer._click import exceptions as click_errors  # typer vendors click; its errors live here
from typer.core import TyperGroup


class _OneLineErrors(TyperGroup):
    """A bad flag or argument is one line on stderr and exit 1, like every other user error
    (click's own report is a usage block or a rich panel over several lines)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        _fresh.clear()  # stores created by an earlier command of this process are not this one's to remove
        try:
            code = super().main(*args, **kwargs)
        except click_errors.NoArgsIsHelpError as exc:
            exc.show()  # bare `crowd` or `crowd local`: the help, as before
            sys.exit(0)
        except click_errors.ClickException as exc:
            err.print(f"error: {exc.format_message()}", markup=False, highlight=False, soft_wrap=True)
            sys.exit(1)
        except typer.Abort:
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(help="Run human-annotation campaigns for RLHF data on crowd marketplaces.", cls=_OneLineErrors,
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
local_app = typer.Typer(help="Local marketplaces (MTurk- and Toloka-compatible servers with a simulated crowd).",
                        no_args_is_help=True)
app.add_typer(local_app, name="local")

def _console(stderr: bool = False) -> Console:
    """rich's layout on a terminal; elsewhere (a pipe, a cron log) whole lines: no wrapping at 80
    columns mid-sentence, tables as wide as their contents, no cell cut short."""
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=100_000, soft_wrap=True)


out = _console()
err = _console(stderr=True)

DbOpt = typer.Option(None, "--db", help="SQLAlchemy URL of the store (default: CROWD_DATABASE_URL or "
                     "sqlite:///./crowd.db).")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object for scripts.")
def _endpoint(value: str | None) -> str | None:
    from campaigns.errors import CrowdError
    from campaigns.store.connect import check_endpoint

    try:
        return None if value is None else check_endpoint(value)
    except CrowdError as exc:
        raise typer.BadParameter(str(exc)) from None


EndpointOpt = typer.Option(None, "--endpoint", callback=_endpoint,
                           help="Marketplace endpoint URL, overriding the spec's.")


@app.callback()
def _configure() -> None:
    """Logs go to stderr at CROWD_LOG_LEVEL (default WARNING); secrets are never logged."""
    import logging

    from campaigns.store.settings import Settings

    level = Settings().log_level.upper()
    logging.basicConfig(level=getattr(logging, level, logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return str(o)
    if hasattr(o, "isoformat"):
        return o.isoformat()
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    if hasattr(o, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(o)
    return str(o)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=_default, sort_keys=False) + "\n")


def run(fn: Callable[[], Any]) -> Any:
    """Turn the library's errors into one line and an exit code. A store file this command
    created is removed again when the command fails before writing anything to it, so a refusal
    (a budget, a dead endpoint, a sandbox that does not exist) leaves no empty store behind.
    The error classes are imported only once something failed: SQLAlchemy and the connectors
    take a third of a second to import, which a command like ``aggregate`` never needs."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - sorted by _failure; a bug of ours still gets one line
        raise _failure(exc) from None


def _failure(exc: Exception) -> typer.Exit:
    """The line and exit code for an error out of a command (see ``run``)."""
    import logging

    from sqlalchemy.exc import DBAPIError

    from campaigns.errors import CrowdError
    from connectors.base import ConnectorError, ProviderUnreachable
    from decomposition.errors import InputError
    from payouts.errors import PayoutsError

    def fail(message: str, code: int) -> typer.Exit:
        _discard_fresh_stores()
        err.print(message, markup=False, highlight=False, soft_wrap=True)
        return typer.Exit(code)

    if isinstance(exc, ProviderUnreachable):
        return fail(f"error: provider unreachable after retries: {exc}", 2)
    if isinstance(exc, (CrowdError, ConnectorError, InputError, PayoutsError)):
        return fail(f"error: {exc}", 1)
    if isinstance(exc, DBAPIError):  # the database refused (read-only, locked, gone)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        return fail(f"error: the store refused the change: {reason}", 1)
    if isinstance(exc, OSError):  # a file or folder argument the system refused
        where = f": {exc.filename}" if exc.filename else ""
        return fail(f"error: {exc.strerror or exc}{where}", 1)
    logging.getLogger("crowd").debug("unexpected error", exc_info=exc)  # a bug of ours: one line, traceback in the log
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return fail(f"error: internal error {type(exc).__name__}: {first} (CROWD_LOG_LEVEL=DEBUG shows the traceback)", 1)


_fresh: list[tuple[Any, Path]] = []  # (store, SQLite file) opened by this command where none was


def _discard_fresh_stores() -> None:
    """Delete the SQLite files this command created if it wrote no campaign to them."""
    from sqlmodel import select

    from campaigns.store.models import Campaign

    while _fresh:
        store, path = _fresh.pop()
        try:
            with store.session() as s:
                empty = s.exec(select(Campaign.id)).first() is None
        except Exception:  # noqa: BLE001 - an unreadable new file is not worth keeping either
            empty = True
        if empty:
            store.close()
            for extra in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{extra}").unlink(missing_ok=True)


def _store(db: str | None, *, must_exist: bool = False):
    """Open the store; read commands (``must_exist``) refuse to create an empty SQLite file."""
    from campaigns.errors import CrowdError
    from campaigns.store.database import normalize_url, open_store
    from campaigns.store.settings import Settings

    url = normalize_url(db or Settings().database_url)
    path = Path(url.database) if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
        and not url.query.get("uri") else None  # a file: URI (mode=ro...) is sqlite's to resolve
    if must_exist and path is not None and not path.exists():
        raise CrowdError(f"no store at {url.database}: run crowd launch first, or pass --db")
    fresh = path is not None and not path.exists()
    store = open_store(url.render_as_string(hide_password=False))
    if fresh:
        _fresh.append((store, path))
    return store


def _out_file(path: Path | None) -> Path | None:
    """Option callback: a file to write, whose folder exists and which is not itself a folder."""
    if path is not None:
        if path.is_dir():
            raise typer.BadParameter(f"{path} is a folder; give a file name")
        if not path.parent.is_dir():
            raise typer.BadParameter(f"folder {path.parent} does not exist")
    return path


def _one_of(*allowed: str) -> Callable[[str], str]:
    """Option callback: the value must be one of ``allowed``."""
    def check(value: str) -> str:
        if value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}")
        return value
    return check


def _positive(value: float) -> float:
    if not value > 0 or value == float("inf"):
        raise typer.BadParameter(f"must be a positive number, got {value}")
    return value


ProviderOpt = typer.Option("mturk", "--provider", help="mturk|toloka|inhouse|prolific",
                           callback=_one_of("mturk", "toloka", "inhouse", "prolific"))
ShareOpt = {"min": 0.0, "max": 1.0}  # a share of the crowd


class _Bar:
    """rich progress for long work; silent when --json (stdout stays machine-readable)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and err.is_terminal
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 console=err, transient=True) if self.enabled else None
        self.tasks: dict[str, Any] = {}

    def __enter__(self):
        if self.progress:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.__exit__(*exc)

    def __call__(self, what: str, done: int, total: int) -> None:
        if not self.progress:
            return
        if what not in self.tasks:
            self.tasks[what] = self.progress.add_task(what, total=total)
        self.progress.update(self.tasks[what], completed=done, total=total)


