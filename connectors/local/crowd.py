"""The simulated crowd shared by the local MTurk and Toloka servers.

API
---
- ``SimWorker(worker_id, accuracy, seconds_per_item, spammer, position_bias, abandon_rate, country="US",
  subdivision=None, master=False, adult=True, prior_approved=0, prior_rejected=0)``; the last five are
  the worker's standing before the server started (what MTurk's system qualifications read).
- ``SimField(name, kind, options=[], default="", text="")`` with ``kind`` one of
  ``"choice" | "multi_choice" | "text" | "spans"`` (for ``spans``, ``options`` are the labels).
- ``SimTask(item, inputs, fields, truth=None)``: one item as a worker sees it; ``inputs`` are the
  displayed texts by name; ``truth`` is set only when the *market* knows the answer and the worker
  would too if careful (a screening-test question scored by an answer key).
- ``Oracle = Callable[[SimTask, SimWorker, random.Random], dict[str, Any] | None]`` returns neutral
  values: choice -> option value, multi_choice -> list of values, text -> str, spans -> list of
  ``{"start", "end", "label"}``; ``None`` (or a missing field) means "no opinion, fill at random".
- ``Crowd(workers=20, spammers=0.0, seed=0, oracle=None, ...)`` builds workers deterministically;
  ``Crowd.answer(task, worker, rng) -> dict[str, Any]``.
- Helpers for oracles: ``noisy_choice(worker, rng, truth, options)`` and ``random_answer(task, rng)``.
- ``CrowdRunner(crowd, market, clock, seed=0)`` drives the workers over a ``Market`` adapter
  (``version``, ``tick``, ``offers``, ``accept``, ``submit``, ``abandon``; see the protocol below):
  ``advance(seconds)`` runs the crowd synchronously through simulated time (deterministic for a
  seed); ``start()``/``stop()`` run it continuously in a thread against a running clock.

Why a market adapter: the crowd's behaviour (who takes what, how long it takes, how well it is
answered, who walks away) is the same on every marketplace; only "what work is there and how is it
handed in" differs, so each local server implements those few calls and reuses the rest unchanged.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from connectors.local.clock import SimClock

log = logging.getLogger(__name__)

FieldKind = Literal["choice", "multi_choice", "text", "spans"]

COUNTRIES = ["US"] * 6 + ["IN", "IN", "GB", "CA", "DE", "PH"]
US_STATES = ["CA", "TX", "FL", "NY", "PA", "IL", "OH", "GA", "NC", "MI", "WA", "AZ"]
FILLER = ["good", "fine", "ok", "better", "the", "text", "answer", "clear", "yes", "no"]


@dataclass
class SimWorker:
    worker_id: str
    accuracy: float
    seconds_per_item: float
    spammer: bool
    position_bias: float
    abandon_rate: float
    country: str = "US"
    # the worker's standing on the marketplace before this server started (MTurk's system
    # qualifications read it): drawn apart from the fields above so adding one changes no one's work
    subdivision: str | None = None  # ISO 3166-2 state, US workers only (as MTurk has it)
    master: bool = False
    adult: bool = True
    prior_approved: int = 0
    prior_rejected: int = 0


@dataclass
class SimField:
    name: str
    kind: str  # 'choice' | 'multi_choice' | 'text' | 'spans'
    options: list[str] = field(default_factory=list)
    default: str = ""
    text: str = ""


@dataclass
class SimTask:
    item: str
    inputs: dict[str, str]
    fields: list[SimField]
    truth: dict[str, Any] | None = None


Oracle = Callable[[SimTask, SimWorker, random.Random], "dict[str, Any] | None"]


# --------------------------------------------------------------------------- answering
def noisy_choice(worker: SimWorker, rng: random.Random, truth: str, options: list[str]) -> str:
    """``truth`` with probability ``worker.accuracy``; otherwise a wrong option, where the first
    option is favoured by ``worker.position_bias`` (people click the top answer when unsure)."""
    if truth not in options or rng.random() < worker.accuracy:
        return truth
    wrong = [o for o in options if o != truth]
    if not wrong:
        return truth
    if options[0] != truth and rng.random() < worker.position_bias:
        return options[0]
    return rng.choice(wrong)


def _random_spans(text: str, labels: list[str], rng: random.Random) -> list[dict[str, Any]]:
    if not text:
        return []
    spans = []
    for _ in range(rng.randint(0, 2)):
        start = rng.randrange(len(text))
        end = min(len(text), start + rng.randint(1, 20))
        spans.append({"start": start, "end": end, "label": rng.choice(labels or ["issue"])})
    return spans


def random_field(f: SimField, rng: random.Random) -> Any:
    """A valid value for one field, chosen without looking at the content."""
    if f.kind == "choice":
        return rng.choice(f.options) if f.options else ""
    if f.kind == "multi_choice":
        return [o for o in f.options if rng.random() < 0.3]
    if f.kind == "spans":
        return _random_spans(f.text, f.options, rng)
    words = " ".join(rng.choice(FILLER) for _ in range(rng.randint(1, 5)))
    return f"{f.default} {words}".strip() if f.default and rng.random() < 0.5 else words


def random_answer(task: SimTask, rng: random.Random) -> dict[str, Any]:
    return {f.name: random_field(f, rng) for f in task.fields}


def _valid(f: SimField, value: Any) -> bool:
    if f.kind == "choice":
        return isinstance(value, str) and (not f.options or value in f.options)
    if f.kind == "multi_choice":
        return isinstance(value, list) and all(v in f.options for v in value)
    if f.kind == "spans":
        return isinstance(value, list) and all(
            isinstance(s, dict) and {"start", "end"} <= s.keys() for s in value
        )
    return isinstance(value, str)


def _draw_standing(worker: SimWorker, rng: random.Random) -> None:
    """Marketplace history: most workers have hundreds to thousands of approved HITs at 95-100%,
    a few are new; about one in six is a Master (only experienced, well-rated workers are)."""
    worker.subdivision = rng.choice(US_STATES) if worker.country == "US" else None
    worker.adult = rng.random() < 0.85
    worker.prior_approved = 0 if rng.random() < 0.1 else int(10 ** rng.uniform(1.5, 4.5))
    rate = rng.uniform(0.93, 1.0) if rng.random() < 0.9 else rng.uniform(0.75, 0.93)
    worker.prior_rejected = round(worker.prior_approved * (1 - rate) / rate) if worker.prior_approved else 0
    worker.master = worker.prior_approved >= 1000 and rate >= 0.98 and rng.random() < 0.5


class Crowd:
    """A deterministic population of simulated workers and how they answer."""

    def __init__(
        self,
        workers: int = 20,
        spammers: float = 0.0,
        seed: int = 0,
        oracle: Oracle | None = None,
        *,
        accuracy: tuple[float, float] = (0.7, 0.95),
        seconds_per_item: tuple[float, float] = (8, 40),
        position_bias: tuple[float, float] = (0.0, 0.3),
        abandon_rate: tuple[float, float] = (0.0, 0.08),
    ):
        if workers < 0 or not 0 <= spammers <= 1:
            raise ValueError("workers must be >= 0 and spammers a fraction in [0, 1]")
        self.seed, self.oracle = seed, oracle
        rng = random.Random(f"crowd:{seed}")
        n_spam = round(workers * spammers)
        spam_idx = set(rng.sample(range(workers), n_spam)) if n_spam else set()
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        self.workers: list[SimWorker] = []
        seen: set[str] = set()
        for i in range(workers):
            wid = "A" + "".join(rng.choice(alphabet) for _ in range(13))
            while wid in seen:
                wid = "A" + "".join(rng.choice(alphabet) for _ in range(13))
            seen.add(wid)
            self.workers.append(
                SimWorker(
                    worker_id=wid,
                    accuracy=round(rng.uniform(*accuracy), 3),
                    seconds_per_item=round(rng.uniform(*seconds_per_item), 1),
                    spammer=i in spam_idx,
                    position_bias=round(rng.uniform(*position_bias), 3),
                    abandon_rate=round(rng.uniform(*abandon_rate), 3),
                    country=rng.choice(COUNTRIES),
                )
            )
        for w in self.workers:
            _draw_standing(w, random.Random(f"standing:{seed}:{w.worker_id}"))
        self.by_id = {w.worker_id: w for w in self.workers}

    def answer(self, task: SimTask, worker: SimWorker, rng: random.Random) -> dict[str, Any]:
        """Spammers answer at random; others ask the oracle, then use a known truth (with their
        accuracy), then fill whatever is still missing at random."""
        if worker.spammer:
            return random_answer(task, rng)
        given = (self.oracle(task, worker, rng) if self.oracle else None) or {}
        out: dict[str, Any] = {}
        for f in task.fields:
            if f.name in given and _valid(f, given[f.name]):
                out[f.name] = given[f.name]
            elif task.truth and f.name in task.truth and f.kind == "choice":
                out[f.name] = noisy_choice(worker, rng, str(task.truth[f.name]), f.options)
            elif task.truth and f.name in task.truth and f.kind == "multi_choice":
                truth = set(task.truth[f.name])
                out[f.name] = truth_list = [o for o in f.options if o in truth]
                if rng.random() >= worker.accuracy:
                    out[f.name] = random_field(f, rng) if truth_list else [rng.choice(f.options)]
            else:
                out[f.name] = random_field(f, rng)
        return out


# --------------------------------------------------------------------------- market adapter
@dataclass
class Offer:
    """Work a worker could take now: a HIT, a task suite, or a qualification test."""

    ref: str
    kind: str = "work"  # "work" | "test"


@dataclass
class Job:
    """Work a worker has taken. ``handle`` is the market's own record (assignment id, ...)."""

    ref: str
    handle: Any
    tasks: list[SimTask]
    kind: str = "work"


class Market(Protocol):
    """What a local server provides so ``CrowdRunner`` can drive the crowd over it.

    Every method takes the simulated ``now`` and must be thread-safe (the server's state lock).
    """

    def version(self) -> int:
        """A counter bumped on every change that may create work (new HIT, extension, ...)."""
        ...

    def tick(self, now: datetime) -> None:
        """Apply time-driven rules: expiries, auto-approval."""
        ...

    def offers(self, worker: SimWorker, now: datetime) -> list[Offer]:
        """Work this worker may take now (eligible, not done before), in a stable order."""
        ...

    def accept(self, worker: SimWorker, offer: Offer, now: datetime) -> Job | None:
        """Take the work; ``None`` if it is gone meanwhile."""
        ...

    def submit(self, worker: SimWorker, job: Job, answers: list[dict[str, Any]], now: datetime) -> None:
        """Hand in one answer per ``job.tasks`` entry, in the same order."""
        ...

    def abandon(self, worker: SimWorker, job: Job, now: datetime) -> None:
        """The worker walks away from the job."""
        ...


class CrowdRunner:
    """Discrete-event simulation of the crowd working on a market in simulated time."""

    idle_poll_s = 120.0  # how often an idle worker looks again when the market changed
    max_idle_s = 3600.0  # ... and at least this often even if it did not (retry delays, expiries)

    def __init__(self, crowd: Crowd, market: Market, clock: SimClock, seed: int = 0):
        self.crowd, self.market, self.clock = crowd, market, clock
        self._rngs = {w.worker_id: random.Random(f"worker:{seed}:{w.worker_id}") for w in crowd.workers}
        self._events: list[tuple[datetime, int, str, str, Job | None]] = []
        self._seq = itertools.count()
        self._idle_since: dict[str, tuple[int, datetime]] = {}
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        start = clock.now()
        for w in crowd.workers:
            self._push(start + timedelta(seconds=self._rngs[w.worker_id].uniform(0, 30)), w.worker_id, "free")

    def _push(self, at: datetime, worker_id: str, action: str, job: Job | None = None) -> None:
        heapq.heappush(self._events, (at, next(self._seq), worker_id, action, job))

    # ----------------------------------------------------------------- running
    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``, letting the crowd work through that time."""
        with self._lock:
            target = self.clock.now() + timedelta(seconds=seconds)
            manual = self.clock.speed == 0
            while self._events and self._events[0][0] <= target:
                at = self._events[0][0]
                if manual and at > self.clock.now():
                    self.clock.advance((at - self.clock.now()).total_seconds())
                self._step()
            if manual:
                rest = (target - self.clock.now()).total_seconds()
                if rest > 0:
                    self.clock.advance(rest)
            else:
                self.clock.advance(seconds)
            self.market.tick(self.clock.now())

    def run_until(self, until: datetime) -> None:
        """Process every event due by ``until`` (the clock is not moved)."""
        with self._lock:
            while self._events and self._events[0][0] <= until:
                self._step()
            self.market.tick(until)

    def start(self, interval_s: float = 0.05) -> None:
        """Work continuously in a daemon thread as the (running) clock moves."""
        if self._thread:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.run_until(self.clock.now())
                except Exception:  # an oracle bug must not silently stop the whole crowd
                    log.exception("simulated crowd step failed; continuing")

        self._thread = threading.Thread(target=loop, name="crowd-runner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
            self._thread = None

    # ----------------------------------------------------------------- one event
    def _step(self) -> None:
        at, _, wid, action, job = heapq.heappop(self._events)
        worker = self.crowd.by_id[wid]
        rng = self._rngs[wid]
        self.market.tick(at)
        if action == "free":
            self._look_for_work(worker, rng, at)
        elif action == "finish" and job is not None:
            answers = [self.crowd.answer(t, worker, rng) for t in job.tasks]
            self.market.submit(worker, job, answers, at)
            self._push(at + timedelta(seconds=rng.uniform(1, 20)), wid, "free")
        elif action == "abandon" and job is not None:
            self.market.abandon(worker, job, at)
            self._push(at + timedelta(seconds=rng.uniform(30, 300)), wid, "free")

    def _look_for_work(self, worker: SimWorker, rng: random.Random, at: datetime) -> None:
        version = self.market.version()
        idle = self._idle_since.get(worker.worker_id)
        if idle and idle[0] == version and (at - idle[1]).total_seconds() < self.max_idle_s:
            self._push(
                at + timedelta(seconds=self.idle_poll_s * rng.uniform(0.5, 1.5)), worker.worker_id, "free"
            )
            return
        offers = self.market.offers(worker, at)
        job = None
        if offers:
            tests = [o for o in offers if o.kind == "test"]
            # a worker who sees a test it needs takes it first: it unlocks the rest of the work
            offer = rng.choice(tests) if tests else rng.choice(offers[:10])
            job = self.market.accept(worker, offer, at)
        if job is None:
            if not offers:
                self._idle_since[worker.worker_id] = (version, at)
            self._push(
                at + timedelta(seconds=self.idle_poll_s * rng.uniform(0.5, 1.5)), worker.worker_id, "free"
            )
            return
        self._idle_since.pop(worker.worker_id, None)
        work_s = max(1.0, worker.seconds_per_item * max(1, len(job.tasks)) * rng.uniform(0.7, 1.3))
        if worker.spammer:
            work_s *= 0.3  # spammers click through
        if rng.random() < worker.abandon_rate:
            self._push(
                at + timedelta(seconds=work_s * rng.uniform(0.1, 0.9)), worker.worker_id, "abandon", job
            )
        else:
            self._push(at + timedelta(seconds=work_s), worker.worker_id, "finish", job)
