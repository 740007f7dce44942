"""``crowd demo`` and ``crowd local serve``: the local marketplaces, with their simulated crowd."""

from __future__ import annotations

from pathlib import Path

import typer

from campaigns.cli.app import (
    DbOpt,
    JsonOpt,
    ProviderOpt,
    ShareOpt,
    _Bar,
    _one_of,
    _positive,
    app,
    emit_json,
    err,
    local_app,
    out,
    run,
)


@app.command()
def demo(provider: str = ProviderOpt,
         kind: str = typer.Option("pairwise", "--kind", help="pairwise|ffv", callback=_one_of("pairwise", "ffv")),
         items: int | None = typer.Option(None, "--items", min=1, help="Use only the first N items."),
         workers_n: int = typer.Option(30, "--workers", min=1, help="Simulated workers."),
         spammers: float = typer.Option(0.1, "--spammers", **ShareOpt, help="Share of spammers in the crowd."),
         seed: int = typer.Option(0, "--seed"), db: str | None = DbOpt, as_json: bool = JsonOpt) -> None:
    """Run a whole campaign on a local marketplace with a simulated crowd, then summarise it."""
    from campaigns.demo.run import run_demo

    with _Bar(not as_json) as bar:
        summary = run(lambda: run_demo(provider=provider, kind=kind, items=items, workers=workers_n,
                                       spammers=spammers, seed=seed, db=db, progress=bar,
                                       log=None if as_json else err.print))
    if as_json:
        emit_json(summary)
    else:
        from campaigns.demo.run import render_summary

        out.print(render_summary(summary), soft_wrap=True)


@local_app.command("serve")
def local_serve(provider: str = ProviderOpt,
                port: int = typer.Option(0, "--port", min=0, max=65535, help="Port on 127.0.0.1 (0: a free one)."),
                workers_n: int = typer.Option(20, "--workers", min=1, help="Simulated workers in the crowd."),
                spammers: float = typer.Option(0.0, "--spammers", **ShareOpt,
                                               help="Share of the crowd that answers at random."),
                clock_speed: float = typer.Option(
                    1.0, "--clock-speed", callback=_positive,
                    help="Simulated seconds per wall second (> 0), starting at the wall-clock time the server "
                    "starts. 1 (the default) is the wall clock, which clients that bound their queries by "
                    "wall-clock now need (toloka.streaming, toloka.metrics, submitted_gte=now-1h); above 1 "
                    "simulated time runs ahead (auto-approval and expiry come sooner) and such clients see "
                    "events only once the wall clock catches up."),
                seed: int = typer.Option(0, "--seed", help="Seed of the simulated crowd (who is accurate, who "
                                         "is fast); marketplace ids are fresh on every start."),
                truth: Path | None = typer.Option(
                    None, "--truth", help="Example directory whose truth.jsonl honest workers answer from, with their "
                    "accuracy, or a bundled example's name (pairwise, ffv); without it they answer at "
                    "random."),
                proxy_port: int | None = typer.Option(
                    None, "--proxy-port", min=0, max=65535,
                    help="MTurk only: also run an HTTPS proxy on this port (0: a free one) that answers for "
                    "MTurk's sandbox and production hostnames, so tools with Amazon's endpoint built in (amti, "
                    "Mephisto, psiTurk) reach this server; prints the HTTPS_PROXY and AWS_CA_BUNDLE to export. "
                    "Every other host is refused.")) -> None:
    """Run a local marketplace in the foreground with the simulated crowd working continuously."""
    from connectors.local import serve

    if proxy_port is not None and provider != "mturk":
        raise typer.BadParameter(f"only --provider mturk has a proxy, not {provider} (toloka-kit takes the "
                                 "server's URL as TolokaClient(url=...))", param_hint="'--proxy-port'")
    oracle = None
    if truth is not None:
        from campaigns.demo.oracles import example_oracle

        oracle = run(lambda: example_oracle(truth))[1]
    def go() -> None:
        from campaigns.errors import CrowdError
        from connectors.local.proxy import ProxyError

        try:
            serve(provider, port=port, workers=workers_n, spammers=spammers, clock_speed=clock_speed, seed=seed,
                  oracle=oracle, proxy_port=proxy_port)
        except ProxyError as exc:
            raise CrowdError(str(exc)) from None
        except OSError as exc:
            raise CrowdError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None

    run(go)
