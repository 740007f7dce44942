"""How a campaign's results compare with a known truth: the demo's and the benchmarks' measure
(the simulated crowd's hidden qualities and seeded errors), never used to decide anything."""

from __future__ import annotations

from sqlmodel import select

from campaigns.engine.finish import stage_judgements, stage_tasks
from campaigns.errors import CrowdError
from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, Item, Stage
from decomposition.comparison import golden_frame


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
    frame, known = golden_frame(stage_judgements(store, stage), stage_tasks(store, stage))
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
