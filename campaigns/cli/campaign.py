"""The campaign commands: launch, poll, status, costs, reconcile, workers, export, aggregate."""

from __future__ import annotations

import sys
import time
from decimal import Decimal
from pathlib import Path

import typer
from rich.table import Table

from campaigns.cli.app import (
    DbOpt,
    EndpointOpt,
    JsonOpt,
    _Bar,
    _default,
    _one_of,
    _out_file,
    _store,
    app,
    emit_json,
    err,
    out,
    run,
)


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


