"""``crowd demo``: a whole campaign on a local marketplace with a simulated crowd.

Starts the local server in-process, launches the example spec from ``examples/``, lets the
crowd work in simulated time between polls, exports, and measures the result against the
simulated truth that only the crowd's oracle knows.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlmodel import select

from campaigns.errors import CrowdError
from campaigns.export import export
from campaigns.launch import launch
from campaigns.loading import load_spec
from campaigns.models import Campaign, Worker
from campaigns.poll import poll
from campaigns.reports import costs
from campaigns.store import open_store

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
KINDS = {"pairwise": "pairwise"}
STEP_S = 1800  # simulated seconds the crowd works between two polls
MAX_SIM_S = 14 * 24 * 3600


def pairwise_oracle(truth: dict[str, float]) -> Callable:
    """Answers like a careful reader who knows each response's hidden quality (with the worker's
    accuracy). A text it has never seen (a golden task's degraded copy) is worse than any known one."""
    from connectors.local.crowd import noisy_choice

    def quality(text: str) -> float:
        return truth.get(text.strip(), -1.0)

    def oracle(task, worker, rng: random.Random) -> dict[str, Any] | None:
        left, right = task.inputs.get("left"), task.inputs.get("right")
        if left is None or right is None:
            return None
        ql, qr = quality(left), quality(right)
        truth_choice = "left" if ql > qr else "right"
        answer: dict[str, Any] = {}
        for f in task.fields:
            if f.kind == "choice" and "left" in f.options and "right" in f.options:
                answer[f.name] = noisy_choice(worker, rng, truth_choice, ["left", "right"])
        return answer

    return oracle


def _load_truth(example: Path, items: list[dict]) -> tuple[dict[str, float], dict[str, float]]:
    by_id = {json.loads(line)["response_id"]: json.loads(line)["quality"]
             for line in (example / "truth.jsonl").read_text().splitlines() if line.strip()}
    by_text = {}
    for it in items:
        for r in it["responses"]:
            by_text[r["text"].strip()] = by_id[r["id"]]
    return by_id, by_text


def run_demo(*, provider: str = "mturk", kind: str = "pairwise", items: int | None = None, workers: int = 30,
             spammers: float = 0.1, seed: int = 0, db: str | None = None,
             progress: Callable[[str, int, int], None] | None = None,
             log: Callable[[str], None] | None = None, out_dir: Path | None = None) -> dict:
    from connectors.local import start_local

    if kind not in KINDS:
        raise CrowdError(f"crowd demo --kind {kind} is not supported yet (supported: {', '.join(KINDS)})")
    if provider not in ("mturk", "toloka"):
        raise CrowdError(f"--provider must be mturk or toloka, not {provider!r}")
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
    truth_by_id, truth_by_text = _load_truth(example, all_items)

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
                     oracle=pairwise_oracle(truth_by_text)) as mp:
        say(f"local {provider} marketplace on {mp.url} with {workers} simulated workers")
        report = launch(spec, store, spec_text=spec_text, endpoint=mp.url, progress=progress)
        say(f"launched {report.name}: {report.pages} pages at {report.reward_per_page} per page")
        api_calls: dict[str, int] = dict(report.api_calls)
        elapsed = 0
        polls = 0
        while True:
            mp.advance(STEP_S)
            elapsed += STEP_S
            pr = poll(store, spec.name, endpoint=mp.url)
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
        sim_workers = list(mp.crowd.workers)

    exports = {}
    for fmt in spec.exports.formats:
        exports[fmt] = export(store, spec.name, fmt, None)["path"]
    from campaigns.results import pairwise_accuracy

    accuracy = pairwise_accuracy(store, spec.name, truth_by_id)
    cost = costs(store, spec.name)["campaigns"][0]
    with store.session() as s:
        campaign = s.exec(select(Campaign).where(Campaign.name == spec.name)).one()
        blocked = set(s.exec(select(Worker.worker_id).where(Worker.provider == provider, Worker.blocked)).all())
        seen = set(s.exec(select(Worker.worker_id).where(Worker.provider == provider)).all())
    spam_ids = {w.worker_id for w in sim_workers if w.spammer}
    return {
        "campaign_id": campaign.id, "campaign": campaign.name, "provider": provider, "environment": "local",
        "kind": kind, "items": len(all_items), "pages_published": report.pages,
        "assignments": accuracy.pop("assignments"), "polls": polls, "simulated_hours": round(elapsed / 3600, 1),
        "api_calls": dict(sorted(api_calls.items())), "accuracy": accuracy,
        "cost": {"rewards": str(cost["spent"]["reward"]), "bonuses": str(cost["spent"]["bonus"]),
                 "fees": str(cost["spent"]["fee"]), "total": str(cost["spent"]["total"]),
                 "currency": cost["currency"], "marketplace_balance_after": str(balance_after)},
        "workers": {"total": len(seen), "blocked": len(blocked), "spammers_simulated": len(spam_ids),
                    "spammers_blocked": len(spam_ids & blocked)},
        "exports": exports, "db": store.engine.url.render_as_string(hide_password=True),
    }


def _spec_yaml(spec) -> str:
    import yaml

    data = spec.model_dump(mode="json", exclude={"base_dir"})
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def render_summary(d: dict) -> str:
    acc = d["accuracy"]
    lines = [
        f"[bold]crowd demo[/]: {d['kind']} on local {d['provider']} — campaign {d['campaign']}",
        f"  items {d['items']}, pages {d['pages_published']}, assignments {d['assignments']}, "
        f"polls {d['polls']} over {d['simulated_hours']} simulated hours",
        f"  accuracy vs simulated truth: majority vote {acc['majority_vote']:.3f}, "
        f"Dawid-Skene {acc['dawid_skene']:.3f}, ranking Spearman {acc['ranking_spearman']:.3f}",
        f"  cost: rewards {d['cost']['rewards']} + bonuses {d['cost']['bonuses']} + fees {d['cost']['fees']} = "
        f"{d['cost']['total']} {d['cost']['currency']}",
        f"  workers: {d['workers']['total']} seen, {d['workers']['blocked']} blocked "
        f"({d['workers']['spammers_blocked']} of {d['workers']['spammers_simulated']} simulated spammers)",
        "  api calls: " + ", ".join(f"{k} {v}" for k, v in d["api_calls"].items()),
        "  exports: " + ", ".join(f"{k} {v}" for k, v in d["exports"].items()),
        f"  store: {d['db']}",
    ]
    return "\n".join(lines)
