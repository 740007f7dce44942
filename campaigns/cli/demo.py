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
        from campaigns.demo.oracles import example_oracle

        oracle = run(lambda: example_oracle(truth))[1]
    def go() -> None:
        try:
            serve(provider, port=port, workers=workers_n, spammers=spammers, clock_speed=clock_speed, seed=seed,
                  oracle=oracle)
        except OSError as exc:
            from campaigns.errors import CrowdError

            raise CrowdError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None

    run(go)
