"""Local, wire-compatible marketplaces with a simulated crowd.

API
---
``start_local(provider="mturk", *, workers=20, spammers=0.0, seed=0, oracle=None, clock_speed=0.0,
faults=None, port=0, balance=Decimal("10000.00"), id_seed=None) -> LocalMarketplace`` starts a server on
127.0.0.1 and returns a handle with ``.url``, ``.provider``, ``.clock``, ``.crowd``, ``.server``,
``.calls`` (``Counter`` per operation), ``.advance(seconds)`` (run the crowd synchronously through
simulated time: deterministic, what tests and the demo use), ``.run_background()`` (the crowd works
continuously in a thread while the clock runs at ``clock_speed``), ``.balance()`` (``Decimal``),
``.stop()``; it is also a context manager. Marketplace ids are fresh on every start (clients that keep a
database of ids must never see one twice); ``id_seed`` makes MTurk's and Toloka's repeatable, for tests
that compare two runs.

``serve(provider, port, workers, spammers, clock_speed, seed, oracle, proxy_port)`` blocks, printing the
URL (the CLI's ``crowd local serve``); ``proxy_port`` also runs ``connectors.local.proxy`` (MTurk only).

Adding a provider: a package ``connectors.local.<provider>`` exporting ``Server``, a subclass of
``connectors.local.http.LocalServer`` constructed as ``Server(clock=, crowd=, faults=, port=,
balance=)`` that also implements the ``connectors.local.crowd.Market`` adapter. It is imported
lazily here, so one provider's server never loads the other's dependencies.
"""

from __future__ import annotations

import importlib
import signal
import time
from collections import Counter
from decimal import Decimal
from types import TracebackType

from connectors.local.clock import SimClock
from connectors.local.crowd import Crowd, CrowdRunner, Oracle
from connectors.local.faults import FaultConfig
from connectors.local.http import LocalServer

PROVIDERS = ("mturk", "toloka", "inhouse", "prolific")

__all__ = ["FaultConfig", "LocalMarketplace", "start_local", "serve"]


class LocalMarketplace:
    """A running local server plus the crowd that works on it."""

    def __init__(self, provider: str, server: LocalServer, crowd: Crowd, clock: SimClock, seed: int = 0):
        self.provider, self.server, self.crowd, self.clock = provider, server, crowd, clock
        self.runner = CrowdRunner(crowd, server, clock, seed=seed)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def calls(self) -> Counter:
        return self.server.calls

    def advance(self, seconds: float) -> None:
        self.runner.advance(seconds)

    def run_background(self) -> None:
        if self.clock.speed <= 0:
            raise ValueError("run_background needs clock_speed > 0 (simulated time must run by itself)")
        self.runner.start()

    def balance(self) -> Decimal:
        with self.server.lock:
            return self.server.balance()

    def stop(self) -> None:
        self.runner.stop()
        self.server.stop()

    def __enter__(self) -> LocalMarketplace:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_local(
    provider: str = "mturk",
    *,
    workers: int = 20,
    spammers: float = 0.0,
    seed: int = 0,
    oracle: Oracle | None = None,
    clock_speed: float = 0.0,
    faults: FaultConfig | None = None,
    port: int = 0,
    balance: Decimal = Decimal("10000.00"),
    id_seed: int | None = None,
) -> LocalMarketplace:
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
    server_cls = importlib.import_module(f"connectors.local.{provider}").Server
    clock = SimClock(speed=clock_speed)
    crowd = Crowd(workers=workers, spammers=spammers, seed=seed, oracle=oracle)
    ids = {} if id_seed is None else {"id_seed": id_seed}  # Prolific's and the task server's ids are always fresh
    server = server_cls(clock=clock, crowd=crowd, faults=faults, port=port, balance=Decimal(balance), **ids)
    server.start()
    return LocalMarketplace(provider, server, crowd, clock, seed=seed)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def serve(
    provider: str = "mturk",
    port: int = 0,
    workers: int = 20,
    spammers: float = 0.0,
    clock_speed: float = 1.0,
    seed: int = 0,
    oracle: Oracle | None = None,
    proxy_port: int | None = None,
) -> None:
    """Run a local marketplace until interrupted; the crowd works as simulated time runs (answering
    from ``oracle`` where it has an answer, else at random). ``proxy_port`` (MTurk only; 0: a free
    port) also runs ``connectors.local.proxy`` there, for tools that hard-code Amazon's endpoint, and
    prints the environment lines that point them at this server."""
    if proxy_port is not None and provider != "mturk":
        raise ValueError(f"only the mturk marketplace has a proxy (toloka-kit takes url=); not {provider}")
    mp = start_local(
        provider, workers=workers, spammers=spammers, seed=seed, clock_speed=clock_speed, port=port,
        oracle=oracle,
    )
    try:
        from connectors.local.proxy import start_mturk_proxy

        proxy = None if proxy_port is None else start_mturk_proxy(mp.url, port=proxy_port)
    except BaseException:
        mp.stop()
        raise
    signal.signal(signal.SIGTERM, _interrupt)  # `kill`, systemd, docker stop: stop as on Ctrl-C
    try:
        mp.run_background()
        also = f"; task server at {mp.server.taskserver_url}" if provider == "prolific" else ""
        print(
            f"local {provider} marketplace at {mp.url}{also} ({workers} workers, clock x{clock_speed})", flush=True
        )
        if proxy is not None:
            print(f"export HTTPS_PROXY={proxy.url} AWS_CA_BUNDLE={proxy.ca_bundle}\n"
                  "# boto3 clients with MTurk's sandbox or production endpoint (amti, Mephisto, psiTurk) now reach "
                  "this server; the proxy refuses every other host, so set these only where such a tool runs, or "
                  "list the other hosts it needs in NO_PROXY (with 127.0.0.1 if HTTP_PROXY is set)", flush=True)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        if proxy is not None:
            proxy.stop()
        mp.stop()
