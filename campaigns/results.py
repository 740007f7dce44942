"""Turning a finished stage's judgements into results: per-pair labels with agreement and
confidence, per-prompt Bradley-Terry rankings and preference pairs, stored on the tasks and
items so exports and reports read them without re-aggregating."""

from __future__ import annotations

from collections import defaultdict

import pandas as pd
from sqlmodel import select

from campaigns.errors import CrowdError
from campaigns.models import Assignment, Campaign, Item, Judgement, Stage, Task, Worker
from campaigns.stages import stage_kind
from campaigns.store import Store

DEFAULT_METHOD = "ds"


def judgement_frame(store: Store, stage: Stage, *, exclude_blocked: bool = True,
                    include_golden: bool = False) -> pd.DataFrame:
    """One row per aggregation row of every valid judgement of the stage (``kind.rows`` + worker)."""
    kind = stage_kind(stage)
    with store.session() as s:
        blocked = set(s.exec(select(Worker.worker_id).where(Worker.blocked)).all()) if exclude_blocked else set()
        q = (select(Judgement, Task.payload, Task.golden).join(Task, Task.id == Judgement.task_id)
             .join(Assignment, Assignment.id == Judgement.assignment_pk)
             .where(Judgement.stage_id == stage.id, Judgement.valid, Assignment.review != "rejected"))
        rows = []
        for j, payload, golden in s.exec(q).all():
            if (golden and not include_golden) or j.worker_id in blocked:
                continue
            judgement = kind.parse(payload, _answer_of(j.value))
            for r in kind.rows(payload, judgement):
                rows.append({**r, "worker": j.worker_id})
    return pd.DataFrame(rows)


def _answer_of(value: dict) -> dict:
    """A stored pairwise judgement back into the form fields its kind parses."""
    out = {"choice": value["choice"]}
    out.update(value.get("criteria") or {})
    return out


def finalize_stage(store: Store, campaign: Campaign, stage: Stage, method: str = DEFAULT_METHOD) -> None:
    if stage.kind not in ("pairwise", "listwise"):
        raise CrowdError(f"no result assembly for task kind {stage.kind!r} yet")
    frame = judgement_frame(store, stage)
    if frame.empty:
        return
    result = stage_kind(stage).aggregate(frame, method=method)
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
    frame = judgement_frame(store, stage)
    out = {"assignments": n_assignments}
    for name, method in (("majority_vote", "mv"), ("dawid_skene", "ds")):
        res = aggregate_pairwise(frame, method=method)
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
            out["ranking_spearman"] = round(sum(rhos) / len(rhos), 4) if rhos else None
            out["pairs"] = int(len(p))
    return out
