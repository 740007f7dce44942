"""Retries and rate limiting shared by every connector.

One tenacity policy for all marketplaces: the connector only says which failures are worth
retrying (throttling, server faults, the network) and how long the server asked it to wait;
backoff, jitter, the attempt budget and the final ``ProviderUnreachable`` live here. Client
libraries' own retries are switched off so this is the only retry loop (no retry storms of
retries inside retries).

Patience is bounded: every client has connect/read timeouts (``connect_timeout_s``,
``read_timeout_s``), and a call gives up once ``deadline_s`` has passed since its first attempt,
so a hanging endpoint costs at most ``deadline_s + connect_timeout_s + read_timeout_s`` (85 s by
default) before ``ProviderUnreachable``. Once a call has been failing for ``notice_after_s`` each
retry is logged at WARNING (seen at the default log level), naming the endpoint and the failure.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay

from connectors.base import ConnectorError, ProviderUnreachable

T = TypeVar("T")
log = logging.getLogger(__name__)

# exc -> (retryable, wait the server asked for in seconds or None)
Classifier = Callable[[BaseException], tuple[bool, float | None]]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff ``initial_s * 2**n`` capped at ``max_s``; with ``jitter`` the wait is
    drawn uniformly from ``[0, backoff]`` ("full jitter") so many clients throttled at once do not
    come back in lockstep. A server-given wait is honoured (capped at ``max_s``). No wait runs
    past ``deadline_s``; ``endpoint`` only names the server in notices and the final error."""

    max_attempts: int = 6
    initial_s: float = 0.2
    max_s: float = 10.0
    jitter: bool = True
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0
    deadline_s: float = 60.0
    notice_after_s: float = 5.0
    endpoint: str | None = None

    @property
    def bound_s(self) -> float:
        """The longest one call can take before it gives up: the deadline plus a last attempt."""
        return self.deadline_s + self.connect_timeout_s + self.read_timeout_s

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Wait after failed attempt number ``attempt`` (1-based) when the server gave no hint."""
        ceiling = min(self.max_s, self.initial_s * 2 ** (attempt - 1))
        return (rng or random).uniform(0, ceiling) if self.jitter else ceiling


def call_with_retry(fn: Callable[[], T], *, classify: Classifier, policy: RetryPolicy | None = None,
                    provider: str, operation: str, sleep: Callable[[float], None] = time.sleep,
                    on_retry: Callable[[BaseException, float], None] | None = None) -> T:
    """Call ``fn``; retry it while ``classify`` calls its failure retryable.

    Non-retryable failures propagate unchanged at once. When the attempts are used up the last
    failure becomes ``ProviderUnreachable`` (its ``code``/``message`` kept when it was a
    ``ConnectorError``). ``on_retry(exc, wait_s)`` runs before each wait (logging, rate limiter).
    """
    policy = policy or RetryPolicy()
    where = f" at {policy.endpoint}" if policy.endpoint else ""

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = classify(exc)[1] if exc is not None else None
        if hint is not None:
            seconds = min(max(hint, 0.0), policy.max_s)
        else:
            seconds = policy.backoff(state.attempt_number)
        elapsed = state.seconds_since_start or 0.0
        seconds = max(0.0, min(seconds, policy.deadline_s - elapsed))
        if exc is not None:
            log.log(logging.WARNING if elapsed + seconds >= policy.notice_after_s else logging.DEBUG,
                    "%s %s%s failed (%s), attempt %d of %d after %.0fs; retrying in %.1fs, giving up %.0fs "
                    "after the first attempt", provider, operation, where, _failure(exc), state.attempt_number,
                    policy.max_attempts, elapsed, seconds, policy.deadline_s)
        if on_retry is not None and exc is not None:
            on_retry(exc, seconds)
        return seconds

    def give_up(state: RetryCallState) -> T:
        exc = state.outcome.exception() if state.outcome else None
        code = getattr(exc, "code", type(exc).__name__)
        message = getattr(exc, "message", str(exc))
        raise ProviderUnreachable(provider, operation, code,
                                  f"gave up{where} after {state.attempt_number} attempts in "
                                  f"{state.seconds_since_start or 0:.0f}s: {message}",
                                  retryable=True) from exc

    retrying = Retrying(
        retry=retry_if_exception(lambda e: classify(e)[0]),
        stop=stop_after_attempt(max(1, policy.max_attempts)) | stop_after_delay(policy.deadline_s),
        wait=wait,
        sleep=sleep,
        retry_error_callback=give_up,
        reraise=True,
    )
    return retrying(fn)


def _failure(exc: BaseException) -> str:
    """What failed, in a few words: the service's code or the network error's name."""
    cause = exc.__cause__ or exc
    return getattr(exc, "code", None) or type(cause).__name__


def is_retryable_connector_error(exc: BaseException) -> tuple[bool, float | None]:
    """The simplest classifier: a ``ConnectorError`` says itself whether it is retryable."""
    return (isinstance(exc, ConnectorError) and exc.retryable, None)


class AdaptiveRateLimiter:
    """A token bucket whose rate halves on throttling and creeps back up on success (AIMD).

    Shared by every thread and connector object that talks to one account (``account_limiter``),
    so a throttled marketplace sees the whole client slow down rather than each thread hammering
    it on its own schedule. ``acquire`` returns the bucket's generation; a throttle reported with
    the generation its request was sent under cuts the rate only if no cut happened since: the
    requests of one concurrent round that are all throttled together halve the rate once, not
    once per thread (TCP's one cut per window), so many threads do not drive it to the floor.
    """

    def __init__(self, rate: float = 10.0, *, min_rate: float = 0.5, max_rate: float | None = None,
                 burst: float | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.max_rate = max_rate if max_rate is not None else rate
        self.min_rate = min(min_rate, self.max_rate)
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = threading.Lock()
        self.generation = 0  # cuts so far
        self.throttles = 0  # throttles reported (a cut or not)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def acquire(self) -> int:
        """Block until one request may go out; returns the generation it goes out under."""
        while True:
            with self._lock:
                self._refill()
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return self.generation
                wait = (1.0 - self._tokens) / self.rate
            self._sleep(wait)

    def on_throttle(self, generation: int | None = None) -> None:
        """The server said slow down: halve the rate (never below ``min_rate``), unless the
        request was sent before the last cut (``generation`` older than the bucket's)."""
        with self._lock:
            self.throttles += 1
            if generation is not None and generation < self.generation:
                return
            self._refill()
            self.rate = max(self.min_rate, self.rate / 2)
            self._tokens = min(self._tokens, 0.0)
            self.generation += 1

    def on_success(self) -> None:
        """Recover gradually: add 5% of the ceiling per successful call."""
        with self._lock:
            if self.rate < self.max_rate:
                self._refill()
                self.rate = min(self.max_rate, self.rate + self.max_rate * 0.05)

    def configure(self, rate: float, *, min_rate: float, burst: float | None = None) -> None:
        """A new ceiling (and floor, and burst) for a bucket already in use."""
        with self._lock:
            self._refill()
            self.max_rate, self.min_rate = rate, min(min_rate, rate)
            self.rate = min(self.rate, rate) if self.generation else rate
            self.burst = burst if burst is not None else max(1.0, rate)
            self._tokens = min(self._tokens, self.burst)


_ACCOUNTS: dict[Hashable, AdaptiveRateLimiter] = {}
_ACCOUNTS_LOCK = threading.Lock()


def account_limiter(account: Hashable, rate: float, *, min_rate: float = 0.5,
                    burst: float | None = None) -> AdaptiveRateLimiter:
    """The one limiter of ``account`` (e.g. endpoint and access key) in this process.

    A marketplace counts an account's requests, not a client object's: two connectors (or two
    stages, or a publish and a poll) on one account must draw from one bucket, or together they
    exceed the limit each keeps. The latest ``rate`` asked for becomes the bucket's ceiling."""
    with _ACCOUNTS_LOCK:
        limiter = _ACCOUNTS.get(account)
        if limiter is None:
            limiter = _ACCOUNTS[account] = AdaptiveRateLimiter(rate=rate, min_rate=min_rate, burst=burst)
        elif (limiter.max_rate, limiter.min_rate) != (rate, min(min_rate, rate)):
            limiter.configure(rate, min_rate=min_rate, burst=burst)
        return limiter
