"""Turning a finished stage's judgements into results: per-pair labels with agreement and
confidence, per-prompt Bradley-Terry rankings and preference pairs, stored on the tasks and
items so exports and reports read them without re-aggregating."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd
from sqlmodel import select

from campaigns.errors import CrowdError
from campaigns.quality.pools import blocked_workers
from campaigns.stages.plan import stage_kind
from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, Item, Judgement, Stage, Task

DEFAULT_METHOD = "ds"


def judgement_frame(store: Store, stage: Stage, *, exclude_blocked: bool = True,
                    include_golden: bool = False) -> pd.DataFrame:
    """One row per aggregation row of every valid judgement of the stage (``kind.rows`` + worker);
    a worker who met a task on more than one page counts with their first answer only."""
    kind = stage_kind(stage)
    with store.session() as s:
        provider = s.get(Campaign, stage.campaign_id).provider
        blocked = blocked_workers(s, provider) if exclude_blocked else set()
        q = (select(Judgement, Task.payload, Task.golden).join(Task, Task.id == Judgement.task_id)
             .join(Assignment, Assignment.id == Judgement.assignment_pk)
             .where(Judgement.stage_id == stage.id, Judgement.valid, Assignment.review != "rejected")
             .order_by(Judgement.id))
        rows, seen = [], set()
        for j, payload, golden in s.exec(q).all():
            if (golden and not include_golden) or j.worker_id in blocked or (j.task_id, j.worker_id) in seen:
                continue
            seen.add((j.task_id, j.worker_id))
            judgement = kind.parse(payload, _answer_of(j.value))
            for r in kind.rows(payload, judgement):
                rows.append({**r, "worker": j.worker_id})
    return pd.DataFrame(rows)


def golden_frame(store: Store, stage: Stage) -> tuple[pd.DataFrame, dict[str, str]]:
    """The stage's judgements with its golden pairs, and each golden pair's known winner by pair
    key: what ``aggregate_pairwise(known=...)`` learns the workers from."""
    from decomposition.pairwise import pair_key

    frame = judgement_frame(store, stage, include_golden=True)
    with store.session() as s:
        golden = s.exec(select(Task.payload, Task.golden_answer).where(Task.stage_id == stage.id, Task.golden)).all()
    known = {}
    for payload, answer in golden:
        side = (answer or {}).get("choice")
        if side in ("left", "right") and "left" in payload:
            key = pair_key(payload["prompt_id"], payload["left"]["id"], payload["right"]["id"])
            known[key] = payload[side]["id"]
    return frame, known


def _answer_of(value: dict) -> dict:
    """A stored pairwise judgement back into the form fields its kind parses."""
    out = {"choice": value["choice"]}
    out.update(value.get("criteria") or {})
    return out


def finalize_stage(store: Store, campaign: Campaign, stage: Stage, method: str = DEFAULT_METHOD) -> None:
    if stage.kind in ("find", "fix", "verify"):
        return  # Find-Fix-Verify results are assembled per item as it finishes (campaigns.engine.advance)
    if stage.kind not in ("pairwise", "listwise"):
        raise CrowdError(f"no result assembly for task kind {stage.kind!r} yet")
    frame, known = golden_frame(store, stage) if stage.kind == "pairwise" else (judgement_frame(store, stage), {})
    if frame.empty or frame["pair"].isin(list(known)).all():
        return
    result = stage_kind(stage).aggregate(frame, method=method, **({"known": known} if known else {}))
    from decomposition.aggregate import preference_pairs
    from decomposition.pairwise import pair_key

    pairs = result.pairs[result.pairs["criterion"] == "overall"].set_index("pair")
    prefs = defaultdict(list)
    for p in preference_pairs(result):
        prefs[p["prompt_id"]].append(p)
    with store.write() as s:
        for t in s.exec(select(Task).where(Task.stage_id == stage.id, Task.golden == False)).all():  # noqa: E712
            key = pair_key(t.payload["prompt_id"], t.payload["left"]["id"], t.payload["right"]["id"])
            if key in pairs.index:
                row = pairs.loc[key]
                t.result = {"label": row["label"], "agreement": float(row["agreement"]),
                            "confidence": float(row["confidence"]), "judgements": int(row["n"]),
                            "method": method}
                s.add(t)
        overall = result.scores[result.scores["criterion"] == "overall"]
        for item in s.exec(select(Item).where(Item.campaign_id == campaign.id)).all():
            mine = overall[overall["prompt"] == item.external_id].sort_values("rank")
            item.result = {"ranking": mine["response_id"].tolist(),
                           "scores": {r: (None if pd.isna(v) else float(v))
                                      for r, v in zip(mine["response_id"], mine["score"], strict=True)},
                           "preferences": prefs.get(item.external_id, []), "method": method}
            s.add(item)


def pairwise_accuracy(store: Store, campaign: str, quality: dict[str, float]) -> dict:
    """How the campaign's aggregates compare with a known truth (the demo's hidden quality):
    majority vote and Dawid-Skene on pairs whose true qualities differ, and the Spearman
    correlation of Bradley-Terry scores with the true quality, averaged over prompts."""
    from scipy.stats import spearmanr

    from decomposition.aggregate import aggregate_pairwise

    with store.session() as s:
        c = s.exec(select(Campaign).where(Campaign.name == campaign)).first()
        if c is None:
            raise CrowdError(f"no campaign named {campaign!r}")
        stage = s.exec(select(Stage).where(Stage.campaign_id == c.id)).first()
        n_assignments = len(s.exec(select(Assignment.id).where(Assignment.stage_id == stage.id)).all())
    frame, known = golden_frame(store, stage)
    out = {"assignments": n_assignments}
    for name, method in (("majority_vote", "mv"), ("dawid_skene", "ds")):
        res = aggregate_pairwise(frame, method=method, known=known)
        p = res.pairs[res.pairs["criterion"] == "overall"]
        truth = [(quality[a] > quality[b]) and a or b for a, b in zip(p["first_id"], p["second_id"], strict=True)]
        decided = [quality[a] != quality[b] for a, b in zip(p["first_id"], p["second_id"], strict=True)]
        hits = [lab == t for lab, t, d in zip(p["label"], truth, decided, strict=True) if d]
        out[name] = round(sum(hits) / len(hits), 4) if hits else None
        if method == "ds":
            rhos = []
            scores = res.scores[res.scores["criterion"] == "overall"].dropna(subset=["score"])
            for _prompt, g in scores.groupby("prompt"):
                if len(g) >= 3:
                    rho = spearmanr(g["score"], [quality[r] for r in g["response_id"]]).statistic
                    if rho == rho:  # not NaN
                        rhos.append(rho)
            out["ranking_spearman"] = round(float(sum(rhos) / len(rhos)), 4) if rhos else None
            out["pairs"] = int(len(p))
    return out


def ffv_accuracy(store: Store, campaign: str, truth: dict[str, list[dict]]) -> dict:
    """How a Find-Fix-Verify campaign's revised texts compare with the seeded errors (the demo's
    hidden truth: per item id, ``[{"start", "end", "correct"}]`` in the text as published).

    An error is fixed when a winning fix covers it and equals the patch with every seeded error
    inside it corrected; a changed span is false when it overlaps no seeded error."""
    from decomposition.ffv import KEEP, apply_fixes

    with store.session() as s:
        c = s.exec(select(Campaign).where(Campaign.name == campaign)).first()
        if c is None:
            raise CrowdError(f"no campaign named {campaign!r}")
        items = s.exec(select(Item).where(Item.campaign_id == c.id)).all()
        n_assignments = len(s.exec(select(Assignment.id).join(Stage, Stage.id == Assignment.stage_id)
                                   .where(Stage.campaign_id == c.id)).all())
    errors = fixed = patches = on_errors = changed = false = items_changed = unfinished = 0
    for item in items:
        result = item.result or {}
        if result.get("state") != "done":
            unfinished += 1
        errs = truth.get(item.external_id, [])
        errors += len(errs)
        items_changed += bool(result.get("changed"))
        for p in result.get("patches", []):
            inside = [e for e in errs if p["start"] <= e["start"] and e["end"] <= p["end"]]
            touches = [e for e in errs if e["start"] < p["end"] and p["start"] < e["end"]]
            patches += 1
            on_errors += bool(touches)
            if p.get("winner", KEEP) == KEEP:
                continue
            changed += 1
            false += not touches
            want = apply_fixes(item.payload["text"], [(e["start"], e["end"], e["correct"]) for e in inside])
            want = want[p["start"]:p["end"] + len(want) - len(item.payload["text"])]
            if inside and p["winner_text"] == want:
                fixed += len(inside)
    return {"texts": len(items), "seeded_errors": errors, "patches_found": patches, "patches_on_errors": on_errors,
            "seeded_errors_fixed": fixed, "fixed_share": round(fixed / errors, 4) if errors else None,
            "changed_spans": changed, "false_patches": false,
            "false_share": round(false / changed, 4) if changed else 0.0,
            "items_changed": items_changed, "items_unfinished": unfinished, "assignments": n_assignments}
