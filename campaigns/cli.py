"""The ``crowd`` command: a thin Typer layer over library functions a script can call.

Exit codes: 0 ok; 1 user error (one line on stderr, no traceback); 2 provider unreachable
after retries. Read commands take ``--json`` (one JSON object on stdout).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
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
    (a budget, a dead endpoint, a sandbox that does not exist) leaves no empty store behind."""
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

    try:
        return fn()
    except ProviderUnreachable as exc:
        raise fail(f"error: provider unreachable after retries: {exc}", 2) from None
    except (CrowdError, ConnectorError, InputError, PayoutsError) as exc:
        raise fail(f"error: {exc}", 1) from None
    except DBAPIError as exc:  # the database refused (read-only, locked, gone)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise fail(f"error: the store refused the change: {reason}", 1) from None
    except OSError as exc:  # a file or folder argument the system refused
        where = f": {exc.filename}" if exc.filename else ""
        raise fail(f"error: {exc.strerror or exc}{where}", 1) from None
    except Exception as exc:  # noqa: BLE001 - a bug of ours still gets one line, its traceback in the log
        logging.getLogger("crowd").debug("unexpected error", exc_info=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise fail(f"error: internal error {type(exc).__name__}: {first} (CROWD_LOG_LEVEL=DEBUG shows the "
                   "traceback)", 1) from None


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


ProviderOpt = typer.Option("mturk", "--provider", help="mturk|toloka", callback=_one_of("mturk", "toloka"))
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


@app.command()
def launch(spec: Path = typer.Argument(..., help="Campaign spec (YAML)."), db: str | None = DbOpt,
           endpoint: str | None = EndpointOpt, as_json: bool = JsonOpt) -> None:
    """Plan, price and publish a campaign. Re-running it resumes without publishing anything twice."""
    from campaigns.engine.launch import check_inputs
    from campaigns.engine.launch import launch as do_launch
    from campaigns.spec.loading import load_spec

    def go():
        parsed = load_spec(spec)
        check_inputs(parsed)  # every input error before the store is created or touched
        store = _store(db)
        with _Bar(not as_json) as bar:
            return do_launch(parsed, store, spec_text=spec.read_text(encoding="utf-8"), endpoint=endpoint,
                             progress=bar)

    report = run(go)
    if as_json:
        emit_json(report)
    else:
        verb = "resumed" if report.resumed else "launched"
        out.print(f"{verb} campaign [bold]{report.name}[/] (id {report.campaign_id}): stage {report.stage}, "
                  f"{report.pages} pages ({report.published} published now, {report.already_published} before), "
                  f"reward {report.reward_per_page} per page, forecast {report.forecast_total}")


@app.command()
def poll(campaign: str | None = typer.Argument(None, help="Campaign name (default: every active one)."),
         db: str | None = DbOpt, endpoint: str | None = EndpointOpt,
         watch: float | None = typer.Option(None, "--watch", min=1.0, help="Poll again every SECONDS (>= 1) "
                                            "until done."),
         as_json: bool = JsonOpt) -> None:
    """Fetch new answers, store them, review, pay, and advance or close finished stages."""
    from campaigns.engine.poll import poll as do_poll

    store = run(lambda: _store(db, must_exist=True))
    while True:
        with _Bar(not as_json) as bar:
            report = run(lambda: do_poll(store, campaign, endpoint=endpoint, progress=bar))
        if as_json:
            emit_json(report)
        else:
            out.print(report.summary_line())
        if watch is None or report.all_done:
            break
        time.sleep(watch)


@app.command()
def status(campaign: str | None = typer.Argument(None), db: str | None = DbOpt, as_json: bool = JsonOpt) -> None:
    """Stages, pages, assignments and review state per campaign."""
    from campaigns.reports.status import status as get_status

    data = run(lambda: get_status(_store(db, must_exist=True), campaign))
    if as_json:
        emit_json(data)
        return
    if not data["campaigns"]:
        out.print("no campaigns")
        return
    table = Table("campaign", "provider", "stage", "status", "pages done", "assignments", "approved", "rejected")
    for c in data["campaigns"]:
        for st in c["stages"]:
            table.add_row(c["name"], c["provider"], st["name"], st["status"], f"{st['pages_done']}/{st['pages']}",
                          str(st["assignments"]), str(st["approved"]), str(st["rejected"]))
    out.print(table)


@app.command()
def costs(campaign: str | None = typer.Argument(None), db: str | None = DbOpt,
          by: str = typer.Option("campaign", "--by", help="campaign|stage|provider|day|worker",
                                 callback=_one_of("campaign", "stage", "provider", "day", "worker")),
          as_json: bool = JsonOpt, as_csv: bool = typer.Option(False, "--csv", help="CSV on stdout."),
          plot: Path | None = typer.Option(None, "--plot", callback=_out_file,
                                           help="Write cumulative spend vs budget to a PNG.")) -> None:
    """Spent, committed, forecast and budget left; cost per item and effective hourly wage."""
    from campaigns.reports.status import costs as get_costs

    data = run(lambda: get_costs(_store(db, must_exist=True), campaign, by=by, plot=plot))
    if as_json:
        emit_json(data)
        return
    rows = data["rows"]
    if as_csv:
        import csv

        if rows:
            w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows({k: _default(v) if isinstance(v, Decimal) else v for k, v in r.items()} for r in rows)
        return
    if not rows and not data["campaigns"]:
        out.print("no campaigns")
        return
    if rows:
        table = Table(*rows[0].keys())
        for r in rows:
            table.add_row(*(str(v) for v in r.values()))
        out.print(table)
    for c in data["campaigns"]:
        out.print(_costs_lines(c), markup=False, highlight=False)
    if "plot" in data:
        out.print(f"wrote {data['plot']['path']}", markup=False, highlight=False)


def _costs_lines(c: dict) -> str:
    """A campaign's figures, one line each, labelled so a cron log reads without the table."""
    cur, spent = c["currency"], c["spent"]

    def money(v: Decimal | None, unit: str = "") -> str:
        return "n/a" if v is None else f"{v} {cur}{unit}"

    cap = "no budget cap" if c["budget_cap"] is None else f"budget cap {money(c['budget_cap'])}"
    lines = [
        f"{c['campaign']}: spent {money(spent['total'])} (rewards {spent['reward']}, bonuses {spent['bonus']}, "
        f"fees {spent['fee']}), committed {money(c['committed'])}, forecast {money(c['forecast_total'])}, "
        f"{cap}, budget left {money(c['budget_left'])}",
        f"  cost per item {money(c['cost_per_item'])} ({c['items']} items), "
        f"per label {money(c['cost_per_label'])} ({c['labels']} labels)",
    ]
    for st in c["stages"]:
        timed = (f"median {st['median_seconds_per_page']:.0f} s per page over {st['assignments_timed']} "
                 f"assignments" if st["assignments_timed"] else "no assignment timed yet")
        lines.append(f"  stage {st['stage']}: effective hourly wage {money(st['effective_hourly_wage'], '/h')} "
                     f"({timed}, reward {st['reward_per_page']} per page)")
    return "\n".join(lines)


@app.command()
def reconcile(campaign: str = typer.Argument(..., help="Campaign name."), db: str | None = DbOpt,
              repair: bool = typer.Option(False, "--repair", help="Make the ledger match the marketplace."),
              endpoint: str | None = EndpointOpt, as_json: bool = JsonOpt) -> None:
    """Compare the ledger with the marketplace's bonuses and approvals; report or repair differences."""
    from campaigns.money.reconcile import reconcile as do_reconcile

    report = run(lambda: do_reconcile(_store(db, must_exist=True), campaign, repair=repair, endpoint=endpoint))
    if as_json:
        emit_json(report.as_dict())
    else:
        for d in report.differences:
            out.print(f"{'repaired' if d.repaired else 'found'}: {d.kind} {d.assignment_id} {d.amount}: {d.detail}",
                      markup=False, highlight=False)
        out.print(report.summary_line(), markup=False, highlight=False)
    if not report.ok:
        raise typer.Exit(3)


@app.command()
def workers(args: list[str] = typer.Argument(None, help="[CAMPAIGN] to list, or grant|revoke|block|unblock "
                                                        "WORKER [POOL]"),
            db: str | None = DbOpt, provider: str = typer.Option("mturk", "--provider"),
            campaign: str | None = typer.Option(None, "--campaign", help="Campaign whose marketplace to use."),
            reason: str = typer.Option("", "--reason"), as_json: bool = JsonOpt,
            unseen: bool = typer.Option(False, "--unseen", help="Act on a worker with no answer in this store "
                                        "(an id known from elsewhere)."),
            endpoint: str | None = EndpointOpt) -> None:
    """List workers with pools, trust and evidence, or change one worker's standing."""
    from campaigns.quality import workers as w

    args = args or []
    if args and args[0] in w.ACTIONS:
        if len(args) < 2:
            err.print(f"error: usage: crowd workers {args[0]} WORKER [POOL]")
            raise typer.Exit(1)
        result = run(lambda: w.act(_store(db, must_exist=True), args[0], args[1],
                                   pool=args[2] if len(args) > 2 else None, provider=provider, campaign=campaign,
                                   reason=reason, endpoint=endpoint, unseen=unseen))
        emit_json(result) if as_json else out.print(result["message"])
        return
    rows = run(lambda: w.list_workers(_store(db, must_exist=True), args[0] if args else None))
    if as_json:
        emit_json({"workers": rows})
        return
    table = Table("worker", "provider", "pools", "trust", "golden", "judgements", "blocked")
    for r in rows:
        table.add_row(r["worker_id"], r["provider"], ",".join(r["pools"]),
                      "" if r["trust"] is None else f"{r['trust']:.2f}",
                      f"{r['golden_correct']}/{r['golden_total']}", str(r["judgements"]), str(r["blocked"]))
    out.print(table)


@app.command()
def export(campaign: str = typer.Argument(...), db: str | None = DbOpt,
           fmt: str = typer.Option("trl", "--format", help="trl|jsonl|argilla|sft|audit",
                                   callback=_one_of("trl", "jsonl", "argilla", "sft", "audit")),
           out_path: Path | None = typer.Option(None, "--out", callback=_out_file,
                                                help="Output file (default: exports/...)."),
           raw_worker_ids: bool = typer.Option(False, "--raw-worker-ids",
                                               help="Do not pseudonymise worker ids."),
           as_json: bool = JsonOpt) -> None:
    """Write results: TRL preference JSONL, every judgement as JSONL, or an Argilla ranking export."""
    from campaigns.reports.export import export as do_export

    result = run(lambda: do_export(_store(db, must_exist=True), campaign, fmt, out_path,
                                   pseudonymise=not raw_worker_ids))
    emit_json(result) if as_json else out.print(f"wrote {result['rows']} rows to {result['path']}")


@app.command()
def aggregate(file: Path = typer.Argument(..., help="CSV of answers."),
              method: str = typer.Option("ds", "--method", help="mv|ds|glad|mace",
                                         callback=_one_of("mv", "ds", "glad", "mace")),
              out_file: Path | None = typer.Option(None, "--out", callback=_out_file,
                                                   help="Write task,label,confidence here."),
              task_column: str = typer.Option("task", "--task-column"),
              worker_column: str = typer.Option("worker", "--worker-column"),
              label_column: str = typer.Option("label", "--label-column")) -> None:
    """Aggregate answers collected anywhere (crowd-kit): writes task,label,confidence."""
    from decomposition.aggregate import aggregate_csv

    df = run(lambda: aggregate_csv(file, method, task_column=task_column, worker_column=worker_column,
                                   label_column=label_column, out=out_file,
                                   say=lambda line: err.print(line, markup=False, highlight=False)))
    if out_file is None:
        df.to_csv(sys.stdout, index=False)
    else:
        err.print(f"wrote {len(df)} rows to {out_file}")


@app.command()
def demo(provider: str = ProviderOpt,
         kind: str = typer.Option("pairwise", "--kind", help="pairwise|ffv", callback=_one_of("pairwise", "ffv")),
         items: int | None = typer.Option(None, "--items", min=1, help="Use only the first N items."),
         workers_n: int = typer.Option(30, "--workers", min=1, help="Simulated workers."),
         spammers: float = typer.Option(0.1, "--spammers", **ShareOpt, help="Share of spammers in the crowd."),
         seed: int = typer.Option(0, "--seed"), db: str | None = DbOpt, as_json: bool = JsonOpt) -> None:
    """Run a whole campaign on a local marketplace with a simulated crowd, then summarise it."""
    from campaigns.demo import run_demo

    with _Bar(not as_json) as bar:
        summary = run(lambda: run_demo(provider=provider, kind=kind, items=items, workers=workers_n,
                                       spammers=spammers, seed=seed, db=db, progress=bar,
                                       log=None if as_json else err.print))
    if as_json:
        emit_json(summary)
    else:
        from campaigns.demo import render_summary

        out.print(render_summary(summary), soft_wrap=True)


@local_app.command("serve")
def local_serve(provider: str = ProviderOpt,
                port: int = typer.Option(0, "--port", min=0, max=65535, help="Port on 127.0.0.1 (0: a free one)."),
                workers_n: int = typer.Option(20, "--workers", min=1),
                spammers: float = typer.Option(0.0, "--spammers", **ShareOpt),
                clock_speed: float = typer.Option(60.0, "--clock-speed", callback=_positive,
                                                  help="Simulated seconds per wall second (> 0)."),
                seed: int = typer.Option(0, "--seed"),
                truth: Path | None = typer.Option(
                    None, "--truth", help="Example directory whose truth.jsonl honest workers answer from, with their "
                    "accuracy, or a bundled example's name (pairwise, ffv); without it they answer at "
                    "random.")) -> None:
    """Run a local marketplace in the foreground with the simulated crowd working continuously."""
    from connectors.local import serve

    oracle = None
    if truth is not None:
        from campaigns.demo import example_oracle

        oracle = run(lambda: example_oracle(truth))[1]
    def go() -> None:
        try:
            serve(provider, port=port, workers=workers_n, spammers=spammers, clock_speed=clock_speed, seed=seed,
                  oracle=oracle)
        except OSError as exc:
            from campaigns.errors import CrowdError

            raise CrowdError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None

    run(go)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # python -m campaigns.cli
    app()
