"""Worker-quality benchmark (issue 6), run by hand; figures go to ``benchmarks/RESULTS.md``.

    .venv/bin/python benchmarks/quality.py [--provider mturk|toloka|both] [--items 50] [--seeds 0 1 2]

Three measurements on the local marketplaces with a simulated crowd of 40 workers, 25% spammers,
on the pairwise example (synthetic golden at rate 0.2):
1. blocking: spammers blocked / honest workers blocked at the end, honest workers ever blocked, and
   blocks the policy undid on later evidence (trust policy of the example spec);
2. adaptive overlap (min 3, max 7, ``--target`` posterior, ``--share`` of the room for follow-up
   pages, ``--follow-up-workers`` trusted or anyone) against fixed overlap 7: aggregate accuracy
   against the simulated truth, assignments used, follow-up pages, and answers by a worker to a
   task they had answered before;
3. screening (examples/screening/ranking.yaml, pass 75): main-page assignments by workers whose
   screening score is below the pass mark (or who have none) — must be 0 on both providers.

Pages are published one at a time (``max_workers=1``), as the demo does: the local MTurk server
numbers HITs in arrival order and the crowd takes them in that order, so only a sequential publish
makes a seeded run repeat exactly.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlmodel import func, select  # noqa: E402

from campaigns.demo.oracles import _load_truth, pairwise_oracle  # noqa: E402
from campaigns.demo.run import _spec_yaml  # noqa: E402
from campaigns.engine.launch import launch  # noqa: E402
from campaigns.engine.poll import poll  # noqa: E402
from campaigns.reports.accuracy import pairwise_accuracy  # noqa: E402
from campaigns.spec.loading import load_spec  # noqa: E402
from campaigns.store.database import open_store  # noqa: E402
from campaigns.store.models import (  # noqa: E402
    Assignment,
    Campaign,
    Judgement,
    Page,
    Stage,
    Worker,
    WorkerAction,
    WorkerScore,
)
from connectors.factory import make_connector  # noqa: E402

EXAMPLE = REPO / "examples" / "pairwise"
STEP_S = 300  # a scheduler polling every 5 simulated minutes, as the demo does


def run(provider: str, *, overlap: dict, items: int, workers: int = 40, spammers: float = 0.25, seed: int = 0,
        screening: str | None = None, work: Path, detail: bool = False, step: int = STEP_S,
        wave: int | None = None, probe_pages: int = 4) -> dict:
    """One campaign to the end; returns what the three measurements need."""
    from connectors.local import start_local

    spec = load_spec(EXAMPLE / "spec.yaml")
    all_items = [json.loads(x) for x in (EXAMPLE / spec.items).read_text().splitlines() if x.strip()][:items]
    truth_by_id, truth_by_text = _load_truth(EXAMPLE, all_items)
    items_path = work / "items.jsonl"
    items_path.write_text("".join(json.dumps(i) + "\n" for i in all_items), encoding="utf-8")
    tag = hashlib.sha256(json.dumps([overlap, probe_pages], sort_keys=True).encode()).hexdigest()[:8]
    update = {"name": f"bench-{provider}-{seed}-{tag}-{bool(screening)}",  # the same name every run
              "provider": provider, "items": str(items_path), "seed": seed, "budget": None,
              "overlap": spec.overlap.model_copy(update=overlap), "wave": wave,
              "review": spec.review.model_copy(update={"probe_pages": probe_pages})}
    if screening:
        update["screening"] = {"test": screening}
    spec = spec.model_validate({**spec.model_dump(), **update})
    store = open_store(f"sqlite:///{work / 'crowd.db'}")
    with start_local(provider, workers=workers, spammers=spammers, seed=seed,
                     oracle=pairwise_oracle(truth_by_text)) as mp:
        conn = make_connector(provider, "local", mp.url, **({"max_workers": 1} if provider == "mturk" else {}))
        launch(spec, store, spec_text=_spec_yaml(spec), endpoint=mp.url, connector=conn)
        for _ in range(400):
            mp.advance(step)
            if poll(store, spec.name, endpoint=mp.url, connector=conn).all_done:
                break
        spam = {w.worker_id for w in mp.crowd.workers if w.spammer}
        honest = {w.worker_id for w in mp.crowd.workers if not w.spammer}
        sim = {w.worker_id: w for w in mp.crowd.workers}
    accuracy = pairwise_accuracy(store, spec.name, truth_by_id)
    with store.session() as s:
        c = s.exec(select(Campaign).where(Campaign.name == spec.name)).one()
        blocked = set(s.exec(select(Worker.worker_id).where(Worker.provider == provider, Worker.blocked)).all())
        scores = dict(s.exec(select(Worker.worker_id, Worker.screening_score).where(
            Worker.provider == provider)).all())
        per_worker = dict(s.exec(select(Assignment.worker_id, func.count()).join(Stage)
                                 .where(Stage.campaign_id == c.id).group_by(Assignment.worker_id)).all())
        trust = {r.worker_id: r for r in s.exec(select(WorkerScore).where(WorkerScore.campaign_id == c.id))}
        follow_ups = s.exec(select(func.count()).select_from(Page).join(Stage).where(
            Stage.campaign_id == c.id, Page.follow_up, Page.lane.is_distinct_from("probation"))).one()
        probes = s.exec(select(func.count()).select_from(Assignment).join(Page).join(Stage).where(
            Stage.campaign_id == c.id, Page.lane == "probation")).one()
        probed = Counter(s.exec(select(Assignment.worker_id).join(Page).join(Stage).where(
            Stage.campaign_id == c.id, Page.lane == "probation")).all())
        judged = s.exec(select(Judgement.task_id, Judgement.worker_id).join(Stage).where(
            Stage.campaign_id == c.id)).all()
        at_block = {a.worker_id: a.evidence for a in s.exec(select(WorkerAction).where(
            WorkerAction.campaign_id == c.id, WorkerAction.action == "block"))}
        unblocked = set(s.exec(select(WorkerAction.worker_id).where(
            WorkerAction.campaign_id == c.id, WorkerAction.action == "unblock", WorkerAction.state == "done")).all())
    out = {"provider": provider, "seed": seed, "overlap": overlap, "wave": wave, "assignments": accuracy["assignments"],
           "ds_accuracy": accuracy["dawid_skene"], "mv_accuracy": accuracy["majority_vote"],
           "spammers": len(spam), "spammers_blocked": len(spam & blocked),
           "honest_blocked": len(honest & blocked), "honest_ever_blocked": len(honest & set(at_block)),
           "spammers_unblocked": len(spam & unblocked), "honest_unblocked": len(honest & unblocked),
           "follow_up_pages": follow_ups, "probe_assignments": probes,
           "probed_spammers": len(spam & set(probed)), "probed_honest": len(honest & set(probed)),
           "repeat_answers": len(judged) - len(set(judged))}
    if detail:  # why each worker ended where they did
        out["workers"] = sorted(
            ({"worker": w, "spammer": sim[w].spammer, "accuracy": sim[w].accuracy, "blocked": w in blocked,
              "assignments": per_worker.get(w, 0), "probes": probed[w], "trust": round(trust[w].trust, 3),
              "upper": round(trust[w].parts.get("upper", 0), 3), "flags": trust[w].parts.get("flags"),
              "golden": [trust[w].evidence.get("golden_correct"), trust[w].evidence.get("golden")],
              "agreement": trust[w].parts.get("agreement"), "agreement_tasks": trust[w].evidence.get("agreement_tasks"),
              "at_block": {k: at_block[w].get(k) for k in ("golden_correct", "golden_total", "agreement",
                                                           "agreement_tasks", "upper")} if w in at_block else None}
             for w in trust if w in sim), key=lambda r: (not r["spammer"], r["blocked"], r["trust"]))
    if screening:
        from decomposition.screening import load_screening

        pass_score = load_screening(Path(screening)).pass_score
        failing = {w for w in spam | honest if scores.get(w) is None or scores[w] < pass_score}
        out.update(screened_workers=sum(v is not None for v in scores.values()),
                   failed_screening=sum(v is not None and v < pass_score for v in scores.values()),
                   main_assignments_by_failing=sum(n for w, n in per_worker.items() if w in failing))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--provider", default="both", choices=["mturk", "toloka", "both"])
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--target", type=float, default=0.97, help="adaptive overlap's target posterior")
    ap.add_argument("--only", choices=["adaptive", "fixed", "screening"], nargs="+",
                    default=["adaptive", "fixed", "screening"])
    ap.add_argument("--min", type=int, default=3, help="adaptive overlap's minimum")
    ap.add_argument("--max", type=int, default=7, help="adaptive overlap's maximum, and the fixed overlap")
    ap.add_argument("--share", type=float, default=0.5, help="adaptive overlap's extra_share")
    ap.add_argument("--follow-up-workers", default="trusted", choices=["trusted", "anyone"],
                    help="who may answer adaptive overlap's follow-up pages (spec overlap.follow_up_workers)")
    ap.add_argument("--probe-pages", type=int, default=4,
                    help="golden-only pages per suspect once follow-ups are for the trusted pool (review.probe_pages)")
    ap.add_argument("--wave", type=int, default=None, help="publish pages this many at a time (spec `wave`)")
    ap.add_argument("--step", type=int, default=STEP_S, help="simulated seconds between polls")
    ap.add_argument("--detail", action="store_true", help="add every worker's trust and evidence to each row")
    args = ap.parse_args()
    providers = ["mturk", "toloka"] if args.provider == "both" else [args.provider]
    screening = str(REPO / "examples" / "screening" / "ranking.yaml")
    rows = []
    for provider in providers:
        for seed in args.seeds:
            adaptive = {"min": args.min, "max": args.max, "target_agreement": args.target, "extra_share": args.share,
                        "follow_up_workers": args.follow_up_workers}
            fixed = {"min": args.max, "max": args.max}
            for label, overlap, scr in (("adaptive", adaptive, None), ("fixed", fixed, None),
                                        ("screening", adaptive, screening)):
                if label not in args.only:
                    continue
                with tempfile.TemporaryDirectory() as tmp:
                    r = run(provider, overlap=overlap, items=args.items, seed=seed, screening=scr, work=Path(tmp),
                          detail=args.detail, step=args.step, wave=args.wave, probe_pages=args.probe_pages)
                r["run"] = label
                rows.append(r)
                print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
