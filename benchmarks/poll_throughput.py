"""Poll throughput (issue 19, part 3): one poll that ingests and reviews ~N new assignments, at stage sizes.

Run by hand (not a test): ``.venv/bin/python benchmarks/poll_throughput.py --sizes 10000 100000 1000000 --new 1000``.
For each size, in a fresh process: a local MTurk marketplace (``--workers`` honest simulated
workers answering from a known truth, ``campaigns.demo.oracles.pairwise_oracle``) and a SQLite
store; a pairwise campaign (page size 2, overlap 2, synthetic golden 0.2) is launched through the
product (``engine.launch``), the crowd submits a few dozen answers and one ``poll`` ingests and
reviews them, so the store holds real rows of every table a poll touches. Then the
stage is grown to SIZE answers with synthetic rows of the same shape: each real assignment of that
first poll is cloned (with its raw answer, judgements, reward ledger entry (not its fee entry), and a page, publication
and tasks of its own, marked done and approved), by plain sqlite3 ``executemany`` straight into the
store file, the workers drawn from the same simulated crowd. The crowd then works until ``--new``
more assignments are submitted (pages are left open, so the stage does not finish in that poll),
and a child process (own interpreter, so its peak RSS is that of the poll) runs one ``poll`` with
every phase timed: fetch (``engine.cursor.fetch_new``), each step of ``engine.pipeline.STEPS``
(review also split into the time inside the marketplace's approve/reject calls) and
``finish_stages``. Side by side in that child, right after the poll: the same new assignment and
judgement rows inserted with plain sqlite3 ``executemany`` into the same store file (under another
provider name, in one transaction that is rolled back), so ``ingest_vs_plain`` = ingest / plain insert.
CPU time of the child (the poller alone) per phase too, as the machine may be busy.
Peak RSS: the child's VmRSS when the poll starts and its VmHWM over the poll alone (reset through
/proc/self/clear_refs just before it); ``ru_maxrss`` (whole child, imports included) as well.
Marketplace calls inside review (approve/reject) and quality (block, unblock, grant, revoke) are
timed apart, so ``per_s_without_approve_calls`` is the local work the issue's target is about.
Two timed polls per size: the first ("catch_up") is the first poll after the stage grew, which
tallies every synthetic judgement (``quality.tallies``, as the first poll after the 0006 migration
does) and refits the stage's agreement (``quality.agreement``: its labels grew past the schedule);
then the crowd submits ``--new`` more and the second ("steady") is a poll between refits, the
state a big stage is in almost always. Inside quality, ``quality_parts_s``: ``worker_inputs``,
its ``catch_up`` and ``agreement``, in that ``refit`` and in that ``coded_labels`` and ``fit_labels``.
Prints one JSON line per size; the results and the command go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SPEC = """name: {name}
provider: mturk
environment: local
kind: pairwise
items: items.jsonl
page_size: 2
overlap: {{min: 2}}
golden: {{synthetic: true, rate: 0.2}}
pricing: {{reward: 0.05}}
budget: {{cap: 100000.00}}
review: {{reject_invalid: true, block_below_trust: 0.35, min_evidence: 6}}
exports: {{dir: exports}}
"""
GOOD = "A careful, correct answer to question {i}."
POOR = "An answer to question {i} that misses the point."


def write_campaign(work: Path, name: str, items: int) -> Path:
    rows = [{"id": f"q{i}", "prompt": f"Question {i}: which answer is better?",
             "responses": [{"id": f"q{i}-a", "text": GOOD.format(i=i)}, {"id": f"q{i}-b", "text": POOR.format(i=i)}]}
            for i in range(items)]
    (work / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    spec = work / "spec.yaml"
    spec.write_text(SPEC.format(name=name), encoding="utf-8")
    return spec


def submitted(mp) -> int:
    with mp.server.lock:
        return sum(a.status in ("Submitted", "Approved", "Rejected") for a in mp.server.assignments.values())


def work_until(mp, target: int, step_s: float = 20.0, limit: int = 2000) -> None:
    for _ in range(limit):
        if submitted(mp) >= target:
            return
        mp.advance(step_s)
    raise RuntimeError(f"the crowd submitted {submitted(mp)} of {target} assignments")


def rows(db: sqlite3.Connection, sql: str, args=()) -> list[dict]:
    cur = db.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def insert(db: sqlite3.Connection, table: str, batch: list[dict]) -> None:
    if batch:
        cols = list(batch[0])
        db.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                       [tuple(r[c] for c in cols) for r in batch])


def grow(db_path: Path, stage_id: int, size: int, workers: list[str], seed: int = 0) -> dict:
    """Add synthetic answers to the stage until it holds ``size`` assignments: clones of the real
    ones (each with its own done page, publication and tasks, its judgements and reward entry)."""
    rng = random.Random(seed)
    db = sqlite3.connect(db_path)
    have = db.execute("SELECT count(*) FROM assignments WHERE stage_id = ?", (stage_id,)).fetchone()[0]
    todo = size - have
    if todo <= 0:
        return {"synthetic": 0, "seconds": 0.0}
    t0 = time.perf_counter()
    templates = rows(db, "SELECT * FROM assignments WHERE stage_id = ? ORDER BY id", (stage_id,))
    pages = {p["id"]: p for p in rows(db, "SELECT * FROM pages WHERE stage_id = ?", (stage_id,))}
    pubs = {p["page_id"]: p for p in rows(db, "SELECT * FROM publications")}
    tasks = {t["key"]: t for t in rows(db, "SELECT * FROM tasks WHERE stage_id = ?", (stage_id,))}
    judgements: dict[int, list[dict]] = {}
    for j in rows(db, "SELECT * FROM judgements WHERE stage_id = ?", (stage_id,)):
        judgements.setdefault(j["assignment_pk"], []).append(j)
    rewards = {e["assignment_id"]: e for e in rows(db, "SELECT * FROM ledger WHERE kind = 'reward'")}
    task_by_id = {t["id"]: t for t in tasks.values()}
    next_id = {t: (db.execute(f"SELECT coalesce(max(id), 0) FROM {t}").fetchone()[0] + 1)  # noqa: S608
               for t in ("pages", "publications", "tasks", "assignments", "judgements", "ledger")}
    chunk = 20000
    done = 0
    while done < todo:
        batch: dict[str, list[dict]] = {t: [] for t in next_id}
        for _ in range(min(chunk, todo - done)):
            n = done
            done += 1
            a = templates[n % len(templates)]
            page = pages[a["page_id"]]
            keys = json.loads(page["task_keys"])
            page_id, pub_id = next_id["pages"], next_id["publications"]
            next_id["pages"] += 1
            next_id["publications"] += 1
            new_keys = [f"syn{n}k{i}" for i in range(len(keys))]
            batch["pages"].append({**page, "id": page_id, "page_key": f"syn-page-{n}", "status": "done",
                                   "task_keys": json.dumps(new_keys)})
            pub = pubs[page["id"]]
            ref = f"SYN{n:09d}"
            batch["publications"].append({**pub, "id": pub_id, "page_id": page_id, "provider_ref": ref,
                                          "idempotency_key": f"syn-pub-{n}"})
            task_ids = {}
            for old, new in zip(keys, new_keys, strict=True):
                t = tasks[old]
                task_ids[t["id"]] = next_id["tasks"]
                batch["tasks"].append({**t, "id": next_id["tasks"], "key": new, "page_id": page_id})
                next_id["tasks"] += 1
            answers = json.loads(a["answers"] or "{}")
            answers = {new: answers.get(old) for old, new in zip(keys, new_keys, strict=True) if old in answers}
            worker = rng.choice(workers)
            aid = f"SYNA{n:09d}"
            apk = next_id["assignments"]
            next_id["assignments"] += 1
            batch["assignments"].append({**a, "id": apk, "assignment_id": aid, "page_id": page_id, "page_ref": ref,
                                         "worker_id": worker, "provider_status": "approved", "review": "approved",
                                         "answers": json.dumps(answers)})
            for j in judgements.get(a["id"], []):
                batch["judgements"].append({**j, "id": next_id["judgements"], "assignment_pk": apk,
                                            "task_id": task_ids[j["task_id"]], "worker_id": worker,
                                            "tallied": 0})  # counted by the next poll, as after a migration
                next_id["judgements"] += 1
            e = rewards.get(a["assignment_id"])
            if e is not None:
                batch["ledger"].append({**e, "id": next_id["ledger"], "idempotency_key": f"syn-reward-{n}",
                                        "worker_id": worker, "assignment_id": aid})
                next_id["ledger"] += 1
        with db:
            for table, b in batch.items():
                insert(db, table, b)
    missing_tasks = sum(1 for j in judgements.values() for x in j if x["task_id"] not in task_by_id)
    db.close()
    return {"synthetic": todo, "seconds": round(time.perf_counter() - t0, 1), "unmatched_judgements": missing_tasks}


def build(size: int, new: int, workers: int, seed: int, keep: bool) -> dict:
    """One size: launch, seed poll, grow, crowd work, then the timed poll in a child process."""
    from sqlmodel import select

    from campaigns.engine.launch import launch
    from campaigns.engine.poll import poll
    from campaigns.spec.loading import load_spec
    from campaigns.store.database import open_store
    from campaigns.store.models import Campaign, Stage
    from connectors.factory import make_connector
    from connectors.local import start_local

    work = Path(tempfile.mkdtemp(prefix=f"poll-tp-{size}-"))
    name = f"throughput-{size}"
    seed_answers = 40
    # ~2 tasks a page with golden 0.2: items * 1.25 tasks -> pages * 2 assignments; 40% spare pages stay open
    items = int((seed_answers + new) * 1.4 / 2 * 2 / 1.25) + 10
    spec_path = write_campaign(work, name, items)
    db_path = work / "crowd.db"
    store = open_store(f"sqlite:///{db_path}")
    out: dict = {"size": size}
    from campaigns.demo.oracles import pairwise_oracle

    truth = {t: q for i in range(items) for t, q in ((GOOD.format(i=i), 1.0), (POOR.format(i=i), 0.5))}
    with start_local("mturk", workers=workers, seed=seed, oracle=pairwise_oracle(truth)) as mp:
        conn = make_connector("mturk", "local", mp.url)
        t0 = time.perf_counter()
        launch(load_spec(spec_path), store, spec_text=spec_path.read_text(), endpoint=mp.url, connector=conn)
        out["launch_s"] = round(time.perf_counter() - t0, 1)
        work_until(mp, seed_answers)
        poll(store, name, endpoint=mp.url, connector=conn)  # the real rows the synthetic ones copy
        with store.session() as s:
            c = s.exec(select(Campaign).where(Campaign.name == name)).one()
            stage_id = s.exec(select(Stage.id).where(Stage.campaign_id == c.id)).first()
        store.engine.dispose()
        out["seeded"] = sqlite3.connect(db_path).execute(
            "SELECT count(*) FROM assignments WHERE stage_id = ?", (stage_id,)).fetchone()[0]
        out["grow"] = grow(db_path, stage_id, size, sorted(w.worker_id for w in mp.crowd.workers), seed)
        out["pages_published"] = len(mp.server.hits)
        for run in ("catch_up", "steady"):
            before = submitted(mp)
            t0 = time.perf_counter()
            work_until(mp, before + new)
            out[f"crowd_s_{run}"] = round(time.perf_counter() - t0, 1)
            child = subprocess.run([sys.executable, __file__, "--child", str(db_path), mp.url, name],
                                   capture_output=True, text=True, check=False)
            if child.returncode != 0:
                raise RuntimeError(child.stderr[-3000:])
            result = json.loads(child.stdout.strip().splitlines()[-1])
            if run == "catch_up":
                out["catch_up"] = result
            else:
                out.update(result)
    if not keep:
        for p in sorted(work.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        work.rmdir()
    return out


def timed(times: dict[str, float], key: str, fn, cpu: dict[str, float] | None = None):
    """``fn`` adding its wall time to ``times[key]`` (and this process's CPU time to ``cpu[key]``)."""
    def wrapper(*args, **kw):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kw)
        finally:
            times[key] = times.get(key, 0.0) + time.perf_counter() - t0
            if cpu is not None:
                cpu[key] = cpu.get(key, 0.0) + time.process_time() - c0
    return wrapper


def plain_insert(db_path: Path, first_pk: int) -> dict:
    """The poll's new assignment and judgement rows, inserted again with plain sqlite3 executemany
    into the same file (another provider name, fresh ids), in one transaction rolled back."""
    db = sqlite3.connect(db_path, isolation_level=None)
    a_rows = rows(db, "SELECT * FROM assignments WHERE id >= ? ORDER BY id", (first_pk,))
    j_rows = rows(db, "SELECT * FROM judgements WHERE assignment_pk >= ?", (first_pk,))
    top = db.execute("SELECT max(id) FROM assignments").fetchone()[0] + 1
    shift = top - first_pk
    a_new = [{**r, "id": r["id"] + shift, "provider": "plain"} for r in a_rows]
    j_new = [{**{k: v for k, v in r.items() if k != "id"}, "assignment_pk": r["assignment_pk"] + shift}
             for r in j_rows]
    t0 = time.perf_counter()
    db.execute("BEGIN")
    insert(db, "assignments", a_new)
    insert(db, "judgements", j_new)
    seconds = time.perf_counter() - t0
    db.execute("ROLLBACK")
    db.close()
    return {"rows": len(a_new), "judgements": len(j_new), "seconds": seconds}


def vm(field: str) -> float:
    """A VmRSS / VmHWM line of /proc/self/status, in MB."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return round(int(line.split()[1]) / 1024, 1)


def child(db_path: str, url: str, name: str) -> None:
    """The timed poll (own process, so ru_maxrss is the poll's), then the plain inserts."""
    import campaigns.engine.cursor as cursor_module
    import campaigns.engine.poll as poll_module
    import campaigns.quality.actions as actions_module
    import campaigns.quality.agreement as agreement_module
    import campaigns.quality.trust as trust_module
    from campaigns.engine.pipeline import STEPS
    from campaigns.store.database import open_store
    from connectors.factory import make_connector

    store = open_store(f"sqlite:///{db_path}")
    db = sqlite3.connect(db_path)
    first_pk = db.execute("SELECT coalesce(max(id), 0) + 1 FROM assignments").fetchone()[0]
    stage_size = db.execute("SELECT count(*) FROM assignments").fetchone()[0]
    stage_judgements = db.execute("SELECT count(*) FROM judgements").fetchone()[0]
    db.close()
    conn = make_connector("mturk", "local", url)
    times: dict[str, float] = {}
    cpu: dict[str, float] = {}  # the poller's own CPU: the marketplace runs in the parent process
    cursor_module.fetch_new = timed(times, "fetch", cursor_module.fetch_new, cpu)
    for step in STEPS:
        step.run = timed(times, step.__name__.rsplit(".", 1)[-1], step.run, cpu)
    poll_module.finish_stages = timed(times, "finish", poll_module.finish_stages, cpu)
    parts: dict[str, float] = {}  # inside quality: worker_inputs > (catch_up, agreement > refit > reads, fit)
    actions_module.worker_inputs = timed(parts, "worker_inputs", actions_module.worker_inputs)
    trust_module.catch_up = timed(parts, "catch_up", trust_module.catch_up)
    trust_module.campaign_agreement = timed(parts, "agreement", trust_module.campaign_agreement)
    agreement_module.refit = timed(parts, "refit", agreement_module.refit)
    agreement_module.coded_labels = timed(parts, "coded_labels", agreement_module.coded_labels)
    agreement_module.fit_labels = timed(parts, "fit_labels", agreement_module.fit_labels)
    for op in ("approve", "reject"):
        setattr(conn, op, timed(times, "review_marketplace_calls", getattr(conn, op)))
    for op in ("block", "unblock", "grant", "revoke", "ensure_pool"):
        setattr(conn, op, timed(times, "quality_marketplace_calls", getattr(conn, op)))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM: the peak below is the poll's own
    rss_start = vm("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    profile = os.environ.get("POLL_PROFILE")  # a path: the poll's cProfile stats go there (per run)
    if profile:
        import cProfile

        prof = cProfile.Profile()
        report = prof.runcall(poll_module.poll, store, name, endpoint=url, connector=conn)
        prof.dump_stats(f"{profile}.{os.getpid()}")
    else:
        report = poll_module.poll(store, name, endpoint=url, connector=conn)
    total, total_cpu = time.perf_counter() - t0, time.process_time() - c0
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    poll_peak = vm("VmHWM")
    with store.session() as s:
        from sqlmodel import select

        from campaigns.store.models import StageFit
        refits = [f.fitted_labels for f in s.exec(select(StageFit)).all()]
    store.engine.dispose()
    sp = report.stages[0]
    plain = plain_insert(Path(db_path), first_pk)
    new = max(sp.new, 1)
    review_local = times.get("review", 0.0) - times.get("review_marketplace_calls", 0.0)
    local = total - times.get("review_marketplace_calls", 0.0) - times.get("quality_marketplace_calls", 0.0)
    print(json.dumps({
        "stage_answers_before": stage_size, "stage_judgements_before": stage_judgements,
        "new": sp.new, "approved": sp.approved, "rejected": sp.rejected, "blocked": sp.blocked,
        "poll_s": round(total, 3), "per_s": round(sp.new / total, 1),
        "per_s_without_approve_calls": round(sp.new / local, 1) if local else None,
        "phases_s": {k: round(v, 3) for k, v in times.items()},
        "poll_cpu_s": round(total_cpu, 3), "phases_cpu_s": {k: round(v, 3) for k, v in cpu.items()},
        "review_local_s": round(review_local, 3),
        "quality_local_s": round(times.get("quality", 0.0) - times.get("quality_marketplace_calls", 0.0), 3),
        "quality_parts_s": {k: round(v, 3) for k, v in parts.items()},
        "ms_per_new": {k: round(v * 1000 / new, 3) for k, v in times.items()},
        "plain_insert_s": round(plain["seconds"], 4), "plain_rows": [plain["rows"], plain["judgements"]],
        "plain_per_s": round(plain["rows"] / plain["seconds"], 0) if plain["seconds"] else None,
        "ingest_vs_plain": round(times.get("ingest", 0.0) / plain["seconds"], 1) if plain["seconds"] else None,
        "rss_before_mb": round(rss_before / 1024, 1), "rss_peak_mb": round(rss_peak / 1024, 1),
        "rss_at_poll_start_mb": rss_start, "rss_peak_during_poll_mb": poll_peak,
        "api_calls": dict(sorted(report.api_calls.items())),
        "refits": refits,
    }), flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000], help="answers in the stage")
    ap.add_argument("--new", type=int, default=1000, help="new assignments the measured poll brings")
    ap.add_argument("--workers", type=int, default=100, help="simulated workers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the temporary stores")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # one size in this process
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(build(args.one, args.new, args.workers, args.seed, args.keep)), flush=True)
        return
    results = []
    for size in args.sizes:  # a process per size: nothing cached or allocated carries over
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--one", str(size), "--new", str(args.new), "--workers",
                               str(args.workers), "--seed", str(args.seed)] + (["--keep"] if args.keep else []),
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"# size {size} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        results.append(row)
        print(json.dumps(row), flush=True)
    phases = ["fetch", "ingest", "review", "quality", "pay", "extensions", "probes", "follow_ups", "close_probes",
              "waves", "pages", "finish"]
    print("\n| stage answers | new | poll s | poll CPU s | new/s | new/s without approve calls | "
          + " | ".join(phases) + " | ingest vs plain | peak RSS MB | catch-up poll s | its peak RSS MB |",
          file=sys.stderr)
    print("|---" * (len(phases) + 10) + "|", file=sys.stderr)
    for r in results:
        cells = " | ".join(f"{r['phases_s'].get(p, 0):.2f}" for p in phases)
        c = r["catch_up"]
        print(f"| {r['stage_answers_before']} | {r['new']} | {r['poll_s']:.2f} | {r['poll_cpu_s']:.2f} | {r['per_s']} "
              f"| {r['per_s_without_approve_calls']} | {cells} | {r['ingest_vs_plain']}x "
              f"| {r['rss_peak_during_poll_mb']} | {c['poll_s']:.2f} | {c['rss_peak_during_poll_mb']} |",
              file=sys.stderr)


if __name__ == "__main__":
    main()
