"""Running the demo: serve, launch, let the crowd work between polls, export, summarise."""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlmodel import select

from campaigns.demo.oracles import EXAMPLES, example_oracle
from campaigns.engine.launch import launch
from campaigns.engine.poll import poll
from campaigns.errors import CrowdError
from campaigns.money.reconcile import reconcile
from campaigns.quality.pools import blocked_workers
from campaigns.reports.export import export
from campaigns.reports.status import costs
from campaigns.spec.loading import load_spec
from campaigns.store.database import open_store
from campaigns.store.models import Campaign, Page, Publication, Stage, Worker
from connectors.factory import make_connector

KINDS = {"pairwise": "pairwise", "ffv": "ffv"}
STEP_S = 300  # simulated seconds the crowd works between two polls (a 5-minute schedule)
MAX_SIM_S = 14 * 24 * 3600


def run_demo(*, provider: str = "mturk", kind: str = "pairwise", items: int | None = None, workers: int = 30,
             spammers: float = 0.1, seed: int = 0, db: str | None = None,
             progress: Callable[[str, int, int], None] | None = None,
             log: Callable[[str], None] | None = None, out_dir: Path | None = None) -> dict:
    from connectors.local import start_local

    if kind not in KINDS:
        raise CrowdError(f"crowd demo --kind {kind} is not supported yet (supported: {', '.join(KINDS)})")
    if provider not in ("mturk", "toloka", "inhouse", "prolific"):
        raise CrowdError(f"--provider must be mturk, toloka, inhouse or prolific, not {provider!r}")
    if not 0 <= spammers < 1:
        raise CrowdError("--spammers must be a share between 0 and 1")
    if workers < 3:
        raise CrowdError("--workers must be at least 3")
    say = log or (lambda _msg: None)
    example = EXAMPLES / KINDS[kind]
    spec = load_spec(example / "spec.yaml")
    all_items = [json.loads(x) for x in (example / spec.items).read_text().splitlines() if x.strip()]
    if items is not None:
        if items < 1:
            raise CrowdError("--items must be at least 1")
        all_items = all_items[:items]
    truth_by_id, oracle = example_oracle(example, all_items)

    run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{random.Random().randrange(16**4):04x}"
    work = out_dir or Path(tempfile.mkdtemp(prefix="crowd-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    items_path = work / "items.jsonl"
    items_path.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in all_items), encoding="utf-8")
    spec = spec.model_copy(update={"name": f"demo-{kind}-{provider}-{run_id}", "provider": provider,
                                   "items": str(items_path), "seed": seed,
                                   "exports": spec.exports.model_copy(update={"dir": str(work / "exports")})})
    spec_text = _spec_yaml(spec)
    store = open_store(db or f"sqlite:///{work / 'crowd.db'}")

    with start_local(provider, workers=workers, spammers=spammers, seed=seed,
                     oracle=oracle) as mp:
        say(f"local {provider} marketplace on {mp.url} with {workers} simulated workers")
        # One page at a time on MTurk: the local server numbers HITs in arrival order, so concurrent
        # publishing would make a seeded demo differ from run to run.
        conn = make_connector(provider, "local", mp.url, **local_options(provider, mp))
        report = launch(spec, store, spec_text=spec_text, connector=conn, progress=progress)
        say(f"launched {report.name}: {report.pages} pages at {report.reward_per_page} per page")
        api_calls: dict[str, int] = dict(report.api_calls)
        elapsed = 0
        polls = 0
        while True:
            mp.advance(STEP_S)
            elapsed += STEP_S
            pr = poll(store, spec.name, connector=conn)
            polls += 1
            for op, n in pr.api_calls.items():
                api_calls[op] = api_calls.get(op, 0) + n
            done = sum(s.pages_done for s in pr.stages)
            total = sum(s.pages for s in pr.stages)
            if progress:
                progress("crowd at work", done, max(total, 1))
            if pr.all_done:
                break
            if elapsed >= MAX_SIM_S:
                raise CrowdError(f"demo did not finish within {MAX_SIM_S // 86400} simulated days")
        say(f"done after {polls} polls and {elapsed / 3600:.1f} simulated hours")
        balance_after = mp.balance()
        check = reconcile(store, spec.name, connector=conn)  # the ledger against the marketplace's records
        sim_workers = list(mp.crowd.workers)

    exports = {}
    for fmt in spec.exports.formats:
        exports[fmt] = export(store, spec.name, fmt, None)["path"]
    from campaigns.reports.accuracy import ffv_accuracy, pairwise_accuracy

    if kind == "ffv":
        ffv = ffv_accuracy(store, spec.name, truth_by_id)
        accuracy = {"assignments": ffv.pop("assignments")}
    else:
        ffv = None
        accuracy = pairwise_accuracy(store, spec.name, truth_by_id)
    cost = costs(store, spec.name)["campaigns"][0]
    with store.session() as s:
        campaign = s.exec(select(Campaign).where(Campaign.name == spec.name)).one()
        blocked = blocked_workers(s, provider)
        seen = set(s.exec(select(Worker.worker_id).where(Worker.provider == provider)).all())
        published = len(s.exec(select(Publication.id).join(Page).join(Stage)
                               .where(Stage.campaign_id == campaign.id)).all())  # every stage's pages
    spam_ids = {w.worker_id for w in sim_workers if w.spammer}
    summary = {
        "campaign_id": campaign.id, "campaign": campaign.name, "provider": provider, "environment": "local",
        "kind": kind, "items": len(all_items), "pages_published": published,
        "assignments": accuracy.pop("assignments"), "polls": polls, "simulated_hours": round(elapsed / 3600, 1),
        "api_calls": dict(sorted(api_calls.items())), "accuracy": accuracy,
        "cost": {"rewards": str(cost["spent"]["reward"]), "bonuses": str(cost["spent"]["bonus"]),
                 "fees": str(cost["spent"]["fee"]), "total": str(cost["spent"]["total"]),
                 "currency": cost["currency"], "marketplace_balance_after": str(balance_after)},
        "workers": {"total": len(seen), "blocked": len(blocked), "spammers_simulated": len(spam_ids),
                    "spammers_blocked": len(spam_ids & blocked)},
        "reconcile": {"ok": check.ok, "ledger_total": str(check.ledger_total),
                      "marketplace_total": str(check.provider_total), "differences": check.open_differences},
        "exports": exports, "db": store.engine.url.render_as_string(hide_password=True),
    }
    if ffv is not None:
        summary["ffv"] = ffv
    return summary


def local_options(provider: str, mp) -> dict:
    """What a connector to a local marketplace needs beyond its URL."""
    if provider == "mturk":
        return {"max_workers": 1}
    if provider == "prolific":  # participants are sent to the marketplace's own task server
        return {"taskserver_url": mp.server.taskserver_url}
    return {}


def _spec_yaml(spec) -> str:
    import yaml

    data = spec.model_dump(mode="json", exclude={"base_dir"})
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def render_summary(d: dict) -> str:
    acc = d["accuracy"]
    if "ffv" in d:
        f = d["ffv"]
        quality = (f"  seeded errors fixed {f['seeded_errors_fixed']}/{f['seeded_errors']} ({f['fixed_share']:.0%}), "
                   f"patches found {f['patches_found']}, changed spans {f['changed_spans']} "
                   f"({f['false_patches']} not on a seeded error), texts changed {f['items_changed']}/{f['texts']}")
    else:
        quality = (f"  accuracy vs simulated truth: majority vote {acc['majority_vote']:.3f}, "
                   f"Dawid-Skene {acc['dawid_skene']:.3f}, ranking Spearman {acc['ranking_spearman']:.3f}")
    lines = [
        f"[bold]crowd demo[/]: {d['kind']} on local {d['provider']} — campaign {d['campaign']}",
        f"  items {d['items']}, pages {d['pages_published']}, assignments {d['assignments']}, "
        f"polls {d['polls']} over {d['simulated_hours']} simulated hours",
        quality,
        f"  cost: rewards {d['cost']['rewards']} + bonuses {d['cost']['bonuses']} + fees {d['cost']['fees']} = "
        f"{d['cost']['total']} {d['cost']['currency']}",
        f"  workers: {d['workers']['total']} seen, {d['workers']['blocked']} blocked "
        f"({d['workers']['spammers_blocked']} of {d['workers']['spammers_simulated']} simulated spammers)",
        f"  reconcile: {'in agreement' if d['reconcile']['ok'] else 'DIFFERENCES'}: ledger "
        f"{d['reconcile']['ledger_total']} vs marketplace {d['reconcile']['marketplace_total']}",
        "  api calls: " + ", ".join(f"{k} {v}" for k, v in d["api_calls"].items()),
        "  exports: " + ", ".join(f"{k} {v}" for k, v in d["exports"].items()),
        f"  store: {d['db']}",
    ]
    return "\n".join(lines)
