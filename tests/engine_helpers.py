"""Shared pieces of the engine tests: a tiny campaign, the ``crowd`` command as a subprocess, and a
snapshot of everything that must come out the same however often a step was killed and re-run.

Why a snapshot of this shape: the local servers' ids are deterministic for a seed (the same calls
in the same order give the same HIT, task-suite and assignment ids), so two marketplaces started
with one seed and driven through the same steps must end in exactly equal states: the store's
assignments, reviews and ledger, and the marketplace's pages, assignments and balance.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import selectors
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlmodel import select

from campaigns.engine.launch import launch
from campaigns.engine.poll import poll
from campaigns.spec.loading import load_spec
from campaigns.store.database import open_store
from campaigns.store.models import (
    Assignment,
    Campaign,
    Judgement,
    LedgerEntry,
    Page,
    Publication,
    Stage,
    Task,
    Worker,
    WorkerAction,
)
from connectors.factory import make_connector
from connectors.local import LocalMarketplace, start_local

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / "../shared"
CROWD = Path(sys.executable).parent / "crowd"
START_BALANCE = Decimal("10000.00")
STEP_S = 60  # simulated seconds of crowd work between two polls: the work spreads over 2-3 polls
MAX_POLLS = 8


def campaign_items(n: int = 4, responses: int = 2) -> list[dict[str, Any]]:
    """The first ``n`` prompts of the pairwise example, each with ``responses`` answers."""
    lines = (REPO / "examples/pairwise/items.jsonl").read_text(encoding="utf-8").splitlines()
    items = [json.loads(x) for x in lines if x.strip()][:n]
    return [{"id": it["id"], "prompt": it["prompt"], "responses": it["responses"][:responses]} for it in items]


def write_campaign(directory: Path, provider: str = "mturk", *, name: str = "engine", items: int = 4,
                   features: bool = False, strict: bool = True) -> Path:
    """A small pairwise campaign (4 pairs + synthetic golden, 2 per page, overlap 2) whose strict
    quality policy blocks a worker after one wrong golden answer, so every step of a poll has work.
    ``features`` adds a wage top-up and a quality bonus, and adaptive overlap up to 3."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = campaign_items(items)
    (directory / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    overlap = "{min: 2, max: 3, target_agreement: 0.95}" if features else "{min: 2}"
    pricing = ("{reward: 0.01, hourly_wage: 12.00, wage_topup: true, topup_after: 1}" if features
               else "{reward: 0.05}")
    bonus = ", quality_bonus: 0.01, trusted_above: 0.1" if features else ""
    # strict: one wrong golden answer blocks a worker, so every step of a poll has work; with a
    # crowd working in real time that can block everyone who answered a pair, leaving no result
    policy = "block_below_trust: 0.8, min_evidence: 1" if strict else "block_below_trust: 0.35, min_evidence: 6"
    spec = directory / "spec.yaml"
    spec.write_text(
        f"name: {name}\nprovider: {provider}\nkind: pairwise\nitems: items.jsonl\npage_size: 2\n"
        f"overlap: {overlap}\ngolden: {{synthetic: true, rate: 0.3}}\npricing: {pricing}\n"
        f"budget: {{cap: 5.00}}\nreview: {{reject_invalid: true, {policy}{bonus}}}\n"
        f"exports: {{dir: {directory / 'exports'}}}\n",
        encoding="utf-8")
    return spec


def market(provider: str, seed: int = 7, **kw: Any) -> LocalMarketplace:
    """A small local marketplace; MTurk's and Toloka's ids repeat per seed, so two runs' states compare."""
    if provider in ("mturk", "toloka"):
        kw.setdefault("id_seed", seed)
    return start_local(provider, workers=6, seed=seed, balance=START_BALANCE, **kw)


def crowd_env(db: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a ``crowd`` subprocess: ours minus any CROWD_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROWD_")}
    if db is not None:
        env["CROWD_DATABASE_URL"] = db
    env.update(extra)
    return env


def crowd(*args: str, db: str | None = None, cwd: Path | None = None, timeout: float = 120,
          **env: str) -> subprocess.CompletedProcess:
    """Run the installed ``crowd`` command; ``env`` adds variables (e.g. ``CROWD_KILL_AT``)."""
    return subprocess.run([str(CROWD), *args], env=crowd_env(db, **env), cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def _cli_child(args: list[str], env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the child ends with this process
    from campaigns.cli import app

    app(args, prog_name="crowd")


def crowd_forked(*args: str, db: str, timeout: float = 120, **env: str) -> int:
    """Run ``crowd ARGS`` in a child forked from this process and return its exit status.

    The child is a separate process that dies exactly as ``crowd`` would (``os._exit(137)`` at a
    checkpoint: no cleanup, no commit), but it starts with every module already imported, which
    makes a kill test cost a fraction of a second instead of the command's start-up time."""
    child = multiprocessing.get_context("fork").Process(
        target=_cli_child, args=(list(args), {"CROWD_DATABASE_URL": db, **env}))
    child.start()
    child.join(timeout)
    if child.exitcode is None:
        child.kill()
        raise AssertionError(f"crowd {' '.join(args)} did not finish in {timeout} s")
    return child.exitcode


def campaign_done(db: str, name: str = "engine") -> bool:
    with open_store(db) as store, store.session() as s:
        return s.exec(select(Campaign.status).where(Campaign.name == name)).first() == "done"


def sequential_connector(provider: str, endpoint: str):
    """A connector that publishes one page at a time. The local MTurk server numbers HITs, and
    offers them to the crowd, in the order CreateHIT calls arrive, so only a sequential publish
    gives the same page -> HIT mapping (and the same crowd behaviour) on two marketplaces."""
    options = {"max_workers": 1} if provider == "mturk" else {}
    if provider == "prolific":  # its task server, as `crowd` finds it
        options = {"taskserver_url": os.environ["CROWD_INHOUSE_ENDPOINT"]}
    return make_connector(provider, "local", endpoint, **options)


def launch_in_process(spec: Path, db: str, endpoint: str) -> None:
    parsed = load_spec(spec)
    with open_store(db) as store:
        launch(parsed, store, spec_text=spec.read_text(encoding="utf-8"),
               connector=sequential_connector(parsed.provider, endpoint))


def poll_in_process(db: str, endpoint: str) -> bool:
    """One poll of every active campaign (all on one provider, publishing sequentially, see
    ``sequential_connector``); True when all of them are done."""
    with open_store(db) as store:
        with store.session() as s:
            provider = s.exec(select(Campaign.provider)).first()
        conn = sequential_connector(provider, endpoint) if provider else None
        return poll(store, endpoint=endpoint, connector=conn).all_done


# ---------------------------------------------------------------------------- snapshots
def store_state(db: str) -> dict[str, Any]:
    """What the store holds, in a form independent of the database's own row ids and clocks."""
    with open_store(db) as store, store.session() as s:
        page_key = dict(s.exec(select(Page.id, Page.page_key)).all())
        task_key = dict(s.exec(select(Task.id, Task.key)).all())
        assignments = s.exec(select(Assignment)).all()
        aid = {a.id: a.assignment_id for a in assignments}
        return {
            "campaigns": sorted(s.exec(select(Campaign.name, Campaign.status)).all()),
            "stages": sorted((st.name, st.status, st.batch_ref is not None) for st in s.exec(select(Stage)).all()),
            "publications": sorted((page_key[p.page_id], p.provider_ref) for p in s.exec(select(Publication)).all()),
            "assignments": sorted((a.assignment_id, page_key.get(a.page_id), a.worker_id, a.review)
                                  for a in assignments),
            "judgements": sorted((aid[j.assignment_pk], task_key[j.task_id], json.dumps(j.value, sort_keys=True),
                                  j.valid, j.golden_correct) for j in s.exec(select(Judgement)).all()),
            "ledger": sorted((e.idempotency_key, e.kind, e.amount, e.state, e.assignment_id)
                             for e in s.exec(select(LedgerEntry)).all()),
            "worker_actions": sorted((w.idempotency_key, w.action, w.state)
                                     for w in s.exec(select(WorkerAction)).all()),
            "blocked": sorted(s.exec(select(Worker.worker_id).where(Worker.blocked)).all()),
        }


def market_state(mp: LocalMarketplace) -> dict[str, Any]:
    """What the marketplace shows: one entry per HIT / task suite, every assignment's status."""
    with mp.server.lock:
        if mp.provider == "mturk":
            srv = mp.server
            pages = sorted(srv.hits)
            assignments = sorted((a.assignment_id, a.hit_id, a.worker_id, a.status)
                                 for a in srv.assignments.values())
            blocked = sorted(srv.blocks)
        elif mp.provider == "prolific":  # pages live on its task server, submissions on Prolific
            from taskserver.models import PageRow

            st = mp.server.state
            with mp.server.tasks.db.read() as s:
                pages = sorted(s.scalars(select(PageRow.id)))
            assignments = sorted((x.id, x.study_id, x.participant, x.status) for x in st.submissions.values())
            blocked = sorted(p for g, row in st.groups.items() if row["name"] == "crowdbridge:blocked"
                             for p in st.members.get(g, {}))
        else:
            st = mp.server.state
            pages = sorted(st.store["task-suites"])
            assignments = sorted((a["id"], a["task_suite_id"], a["user_id"], a["status"])
                                 for a in st.store["assignments"].values())
            blocked = sorted(r["user_id"] for r in st.store["user-restrictions"].values())
    return {"pages": pages, "assignments": assignments, "blocked": blocked,
            "spent": START_BALANCE - mp.balance()}


APPROVED = {"mturk": "Approved", "toloka": "ACCEPTED", "prolific": "APPROVED"}


def check_consistent(db: str, mp: LocalMarketplace) -> dict[str, Any]:
    """The invariants every run must keep, whatever happened to it; returns both states."""
    st, mk = store_state(db), market_state(mp)
    ids = [a[0] for a in st["assignments"]]
    assert len(ids) == len(set(ids)), "an assignment was stored twice"
    keys = [e[0] for e in st["ledger"]]
    assert len(keys) == len(set(keys)), "a ledger entry was booked twice"
    refs = [p[1] for p in st["publications"]]
    assert sorted(refs) == mk["pages"], "the marketplace's pages are not exactly the published ones"
    assert len(set(refs)) == len(refs), "two pages share one HIT / task suite"
    stored_approved = sorted(a[0] for a in st["assignments"] if a[3] == "approved")
    market_approved = sorted(a[0] for a in mk["assignments"] if a[3] == APPROVED[mp.provider])
    assert stored_approved == market_approved, "approvals in the store differ from the marketplace's"
    paid = Counter(e[4] for e in st["ledger"] if e[1] == "reward")
    assert sorted(paid) == stored_approved and set(paid.values()) <= {1}, "a reward per approval, once"
    assert mk["spent"] == sum((e[2] for e in st["ledger"]), Decimal(0)), "balance change != ledger total"
    return {"store": st, "market": mk}


def shape(state: dict[str, Any]) -> dict[str, Any]:
    """A run without the marketplace's ids: pages by our keys, how many assignments each page got
    and how they were reviewed, the ledger per kind, and the money spent. For comparing runs whose
    ids cannot match (pages published concurrently reach the marketplace in any order)."""
    st, mk = state["store"], state["market"]
    ledger: dict[str, list] = {}
    for e in st["ledger"]:
        n, total = ledger.get(e[1], [0, Decimal(0)])
        ledger[e[1]] = [n + 1, total + e[2]]
    return {"campaigns": st["campaigns"], "stages": st["stages"],
            "pages": sorted(p[0] for p in st["publications"]),
            "reviews": sorted(Counter((a[1], a[3]) for a in st["assignments"]).items()),
            "ledger": ledger, "market_pages": len(mk["pages"]), "spent": mk["spent"]}


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    """One line of a child's stdout, or an AssertionError after ``timeout`` seconds."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout):
        raise AssertionError(f"no line from {proc.args} within {timeout} s")
    return proc.stdout.readline()


@contextmanager
def served(provider: str = "mturk", *, workers: int = 8, clock_speed: float = 120, seed: int = 3,
           cwd: Path | None = None, truth: Path | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    """``crowd local serve`` on a free port, as a user starts it (``truth``: its ``--truth``);
    stopped with SIGTERM, which must end it cleanly (exit 0). Yields the process and the URL it printed."""
    proc = subprocess.Popen([str(CROWD), "local", "serve", "--provider", provider, "--port", "0",
                             "--workers", str(workers), "--clock-speed", str(clock_speed), "--seed", str(seed),
                             *(["--truth", str(truth)] if truth else [])],
                            env=crowd_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    try:
        line = read_line(proc, 60)
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url, f"no URL in {line!r}"
        yield proc, url.group(0)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
