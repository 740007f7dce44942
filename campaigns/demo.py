"""``crowd demo``: a whole campaign on a local marketplace with a simulated crowd.

Starts the local server in-process, launches the example spec from ``campaigns/examples/``
(package data, so an installed wheel has it; the repository's ``examples/`` links there), lets the
crowd work in simulated time between polls, exports, and measures the result against the
simulated truth that only the crowd's oracle knows.
"""

from __future__ import annotations

import json
import random
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlmodel import select

from campaigns.engine.launch import launch
from campaigns.engine.poll import poll
from campaigns.errors import CrowdError
from campaigns.quality.pools import blocked_workers
from campaigns.reports.export import export
from campaigns.reports.status import costs
from campaigns.spec.loading import load_spec
from campaigns.store.database import open_store
from campaigns.store.models import Campaign, Page, Publication, Stage, Worker
from connectors.factory import make_connector

EXAMPLES = Path(__file__).resolve().parent / "examples"
KINDS = {"pairwise": "pairwise", "ffv": "ffv"}
STEP_S = 300  # simulated seconds the crowd works between two polls (a 5-minute schedule)
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


def _errors_in(text: str, start: int, end: int, errors: list[dict]) -> tuple[list[dict], bool]:
    """(seeded errors wholly inside [start, end), whether any error only partly overlaps it)."""
    inside = [e for e in errors if start <= e["start"] and e["end"] <= end]
    partial = any(e["start"] < end and start < e["end"] and e not in inside for e in errors)
    return inside, partial


def _rewrite(patch: str, start: int, errors: list[dict], key: str) -> str:
    """The patch with each seeded error inside it replaced by its ``key`` text (correct/distractor)."""
    from decomposition.ffv import apply_fixes

    return apply_fixes(patch, [(e["start"] - start, e["end"] - start, e[key]) for e in errors])


def _tweak(patch: str) -> str:
    """A needless edit (what a worker writes for a part with nothing wrong in it)."""
    words = patch.split()
    return " ".join(words[:-1]) if len(words) > 1 else patch + "s"


def ffv_oracle(truth: dict[str, list[dict]]) -> Callable:
    """Answers Find, Fix and Verify tasks like a careful worker who can spot the seeded errors
    (``truth``: seeded text -> errors) with the worker's accuracy: Find marks each error (sometimes
    with the word before it) and now and then a correct word; Fix writes the correct replacement,
    else a plausible wrong one; Verify votes for the correct candidate (or keep) and flags it."""
    from connectors.local.crowd import noisy_choice
    from decomposition.ffv import KEEP, MARK_CLOSE, MARK_OPEN
    from decomposition.verify import EMPTY_SLOT

    def unmark(shown: str) -> tuple[str, int, int] | None:
        a, b = shown.find(MARK_OPEN), shown.find(MARK_CLOSE)
        if a < 0 or b < a:
            return None
        text = shown[:a] + shown[a + len(MARK_OPEN):b] + shown[b + len(MARK_CLOSE):]
        return text, a, b - len(MARK_OPEN)

    def find(text: str, labels: list[str], worker, rng: random.Random) -> dict:
        errors = truth.get(text.strip(), [])
        spans = []
        for e in errors:
            if rng.random() < worker.accuracy:
                start = e["start"]
                if rng.random() < 0.2 and start > 1:  # include the word before
                    start = text.rfind(" ", 0, start - 1) + 1
                label = e["category"] if e["category"] in labels else labels[0]
                spans.append({"start": start, "end": e["end"], "label": label})
        if rng.random() < 0.05 + 0.3 * (1 - worker.accuracy):  # a correct word marked by mistake
            words = [(m.start(), m.end()) for m in re.finditer(r"\w+", text)
                     if not any(m.start() < e["end"] and e["start"] < m.end() for e in errors)]
            if words:
                a, b = rng.choice(words)
                spans.append({"start": a, "end": b, "label": labels[-1]})
        return {"spans": spans}

    def correct_patch(shown: str) -> tuple[str, str | None, str] | None:
        """(original patch, its correct version or None when nothing seeded is wholly in it, distractor)."""
        found = unmark(shown)
        if found is None or found[0].strip() not in truth:
            return None
        text, a, b = found
        inside, partial = _errors_in(text, a, b, truth[text.strip()])
        patch = text[a:b]
        if not inside or partial:
            return patch, None, _tweak(patch)
        return patch, _rewrite(patch, a, inside, "correct"), _rewrite(patch, a, inside, "distractor")

    def oracle(task, worker, rng: random.Random) -> dict[str, Any] | None:
        fields = {f.name: f for f in task.fields}
        if "spans" in fields:
            return find(fields["spans"].text, fields["spans"].options or ["issue"], worker, rng)
        known = correct_patch(task.inputs.get("text", ""))
        if known is None:
            return None
        patch, right, wrong = known
        if "rewrite" in fields:
            good = right if right is not None else _tweak(patch)
            return {"rewrite": good if rng.random() < worker.accuracy else wrong}
        if "best" in fields:
            filled = {o: task.inputs.get(o) for o in fields["best"].options
                      if o != KEEP and task.inputs.get(o) not in (None, EMPTY_SLOT)}
            target = next((o for o, t in filled.items() if right is not None and t == right), KEEP)
            best = noisy_choice(worker, rng, target, [KEEP, *filled])
            ok = [o for o in filled if o == target]
            if rng.random() >= worker.accuracy and filled:
                ok = sorted(set(ok) ^ {rng.choice(list(filled))})
            return {"best": best, "acceptable": ok}
        return None

    return oracle


def _load_ffv_truth(example: Path, items: list[dict]) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """(errors by item id, errors by seeded text)."""
    by_id = {t["id"]: t["errors"] for t in map(json.loads, (example / "truth.jsonl").read_text().splitlines())}
    by_id = {it["id"]: by_id[it["id"]] for it in items}
    return by_id, {it["text"].strip(): by_id[it["id"]] for it in items}


def _load_truth(example: Path, items: list[dict]) -> tuple[dict[str, float], dict[str, float]]:
    by_id = {json.loads(line)["response_id"]: json.loads(line)["quality"]
             for line in (example / "truth.jsonl").read_text().splitlines() if line.strip()}
    by_text = {}
    for it in items:
        for r in it["responses"]:
            by_text[r["text"].strip()] = by_id[r["id"]]
    return by_id, by_text


def example_oracle(example: Path, items: list[dict] | None = None) -> tuple[dict, Callable]:
    """(truth by item or response id, an oracle answering from it) for an example directory with a
    ``spec.yaml``, its items and ``truth.jsonl`` (``examples/pairwise``, ``examples/ffv``): what
    makes simulated honest workers answer like careful readers instead of at random. ``items``
    defaults to the spec's items file."""
    if not example.is_dir() and (EXAMPLES / example.name / "spec.yaml").is_file():
        example = EXAMPLES / example.name  # a bundled example by name: works from an installed wheel
    spec_path, truth_path = example / "spec.yaml", example / "truth.jsonl"
    for path in (spec_path, truth_path):
        if not path.is_file():
            raise CrowdError(f"{example}: no {path.name}; give an example directory such as examples/pairwise")
    spec = load_spec(spec_path)
    if items is None:
        items = [json.loads(x) for x in (example / spec.items).read_text().splitlines() if x.strip()]
    if spec.kind == "ffv":
        by_id, by_text = _load_ffv_truth(example, items)
        return by_id, ffv_oracle(by_text)
    if spec.kind == "pairwise":
        by_id, by_text = _load_truth(example, items)
        return by_id, pairwise_oracle(by_text)
    raise CrowdError(f"{example}: no simulated answers for kind {spec.kind!r} (pairwise and ffv have them)")


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
        conn = make_connector(provider, "local", mp.url, **({"max_workers": 1} if provider == "mturk" else {}))
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
        "exports": exports, "db": store.engine.url.render_as_string(hide_password=True),
    }
    if ffv is not None:
        summary["ffv"] = ffv
    return summary


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
        "  api calls: " + ", ".join(f"{k} {v}" for k, v in d["api_calls"].items()),
        "  exports: " + ", ".join(f"{k} {v}" for k, v in d["exports"].items()),
        f"  store: {d['db']}",
    ]
    return "\n".join(lines)
