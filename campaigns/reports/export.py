"""``crowd export``: results in the formats RLHF tooling reads.

- ``trl``: TRL preference rows (``prompt``, ``chosen``, ``rejected``) plus ``margin`` and
  ``agreement`` and the ids they came from;
- ``jsonl``: every judgement with its worker (pseudonymised), assignment and review state;
- ``argilla``: one ranking record per prompt in Argilla's FeedbackDataset record layout
  (``fields``, ``metadata``, ``responses`` with a ``ranking`` value).
Find-Fix-Verify campaigns (``kind: ffv``) export per finished item:
- ``sft``: ``prompt`` and ``completion`` (the revised text), for supervised fine-tuning;
- ``trl``: preference rows with ``chosen`` = revised and ``rejected`` = original, only for items
  with at least one winning fix;
- ``audit``: everything kept for the item: original, revised, per patch the span, candidates,
  votes, winner and agreement, and the item's cost.
Worker ids are pseudonymised with a keyed hash unless the caller asks for raw ids.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlmodel import select

from campaigns.errors import CrowdError
from campaigns.spec.stored import campaign_spec
from campaigns.store.database import Store
from campaigns.store.keys import pseudonym
from campaigns.store.models import Assignment, Campaign, Item, Judgement, Stage, Task
from campaigns.store.settings import Settings

FORMATS = ("trl", "jsonl", "argilla", "sft", "audit")
FFV_FORMATS = ("trl", "jsonl", "sft", "audit")
SUFFIX = {"trl": "preferences.jsonl", "jsonl": "judgements.jsonl", "argilla": "argilla.jsonl",
          "sft": "sft.jsonl", "audit": "audit.jsonl"}


def export(store: Store, campaign: str, fmt: str, out: Path | None = None, *, pseudonymise: bool = True) -> dict:
    if fmt not in FORMATS:
        raise CrowdError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")
    with store.session() as s:
        c = s.exec(select(Campaign).where(Campaign.name == campaign)).first()
        if c is None:
            raise CrowdError(f"no campaign named {campaign!r}")
        if out is None:
            spec = campaign_spec(c)
            out = Path(spec.exports.dir) / f"{c.name}.{SUFFIX[fmt]}"
        secret = Settings().pseudonym_key or c.spec_hash
        who = (lambda w: pseudonym(w, secret)) if pseudonymise else (lambda w: w)
        if c.kind == "ffv":
            if fmt not in FFV_FORMATS:
                raise CrowdError(f"format {fmt!r} is not available for Find-Fix-Verify campaigns "
                                 f"(choose from {', '.join(FFV_FORMATS)})")
            rows = {"trl": _ffv_preferences, "jsonl": _judgements, "sft": _ffv_sft, "audit": _ffv_audit}[fmt](
                s, c, who)
        elif fmt in ("sft", "audit"):
            raise CrowdError(f"format {fmt!r} is for Find-Fix-Verify campaigns (kind: ffv)")
        else:
            rows = {"trl": _trl, "jsonl": _judgements, "argilla": _argilla}[fmt](s, c, who)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
    tmp.replace(out)
    return {"campaign": c.name, "format": fmt, "path": str(out), "rows": len(rows)}


def _items(s, c: Campaign) -> list[Item]:
    return list(s.exec(select(Item).where(Item.campaign_id == c.id).order_by(Item.id)).all())


def _texts(item: Item) -> dict[str, str]:
    from decomposition.pairwise import parse_item

    _model, responses = parse_item(item.payload)
    return {r.id: r.text for r in responses}


def _trl(s, c: Campaign, who) -> list[dict]:
    rows = []
    for item in _items(s, c):
        if not item.result:
            continue
        texts = _texts(item)
        for p in item.result.get("preferences", []):
            rows.append({"prompt": item.payload["prompt"], "chosen": texts[p["chosen_id"]],
                         "rejected": texts[p["rejected_id"]], "margin": p["margin"], "agreement": p["agreement"],
                         "prompt_id": item.external_id, "chosen_id": p["chosen_id"],
                         "rejected_id": p["rejected_id"]})
    return rows


def _judgements(s, c: Campaign, who) -> list[dict]:
    q = (select(Judgement, Task, Assignment, Stage).join(Task, Task.id == Judgement.task_id)
         .join(Assignment, Assignment.id == Judgement.assignment_pk).join(Stage, Stage.id == Judgement.stage_id)
         .where(Stage.campaign_id == c.id).order_by(Judgement.id))
    items = {i.id: i.external_id for i in _items(s, c)}
    return [{"campaign": c.name, "stage": st.name, "task": t.key, "item_id": items.get(t.item_id),
             "golden": t.golden, "golden_correct": j.golden_correct, "worker": who(j.worker_id),
             "assignment_id": a.assignment_id, "submitted_at": a.submitted_at, "review": a.review,
             "valid": j.valid, "error": j.error, "value": j.value, "payload": t.payload}
            for j, t, a, st in s.exec(q).all()]


def _argilla(s, c: Campaign, who) -> list[dict]:
    rows = []
    for item in _items(s, c):
        if not item.result:
            continue
        texts = _texts(item)
        ids = list(texts)
        fields = {"prompt": item.payload["prompt"]}
        fields.update({f"response-{n}": texts[rid] for n, rid in enumerate(ids, 1)})
        name = {rid: f"response-{n}" for n, rid in enumerate(ids, 1)}
        ranking = [{"value": name[rid], "rank": r} for r, rid in enumerate(item.result["ranking"], 1)]
        rows.append({"external_id": item.external_id, "fields": fields,
                     "metadata": {"campaign": c.name, "response_ids": ids, "scores": item.result["scores"],
                                  "method": item.result.get("method")},
                     "responses": [{"values": {"ranking": {"value": ranking}}, "status": "submitted"}]})
    return rows


def _ffv_done(s, c: Campaign) -> list[Item]:
    return [i for i in _items(s, c) if (i.result or {}).get("state") == "done"]


def _ffv_sft(s, c: Campaign, who) -> list[dict]:
    return [{"prompt": i.payload.get("prompt") or "", "completion": i.result["revised"], "id": i.external_id}
            for i in _ffv_done(s, c)]


def _ffv_preferences(s, c: Campaign, who) -> list[dict]:
    return [{"prompt": i.payload.get("prompt") or "", "chosen": i.result["revised"],
             "rejected": i.result["original"], "id": i.external_id, "fixes": i.result["fixes"]}
            for i in _ffv_done(s, c) if i.result.get("fixes")]


def _ffv_audit(s, c: Campaign, who) -> list[dict]:
    from campaigns.money.item_costs import item_costs

    cost = item_costs(s, c)
    rows = []
    for i in _items(s, c):
        r = i.result or {}
        patches = [{"id": p["id"], "span": [p["start"], p["end"]], "original": p["original"],
                    "candidates": p.get("candidates", []), "votes": p.get("votes", {}),
                    "acceptable": p.get("acceptable", {}), "winner": p.get("winner"),
                    "winner_text": p.get("winner_text"), "agreement": p.get("agreement"),
                    "confidence": p.get("confidence"), "fix_answers": p.get("fix_answers"),
                    "verify_votes": p.get("verify_votes"), "excluded_votes": p.get("excluded_votes")}
                   for p in r.get("patches", [])]
        rows.append({"campaign": c.name, "id": i.external_id, "state": r.get("state", "find"),
                     "prompt": i.payload.get("prompt"), "original": i.payload["text"], "revised": r.get("revised"),
                     "changed": r.get("changed", False), "find": r.get("find"), "patches": patches,
                     "cost": str(cost.get(i.id, 0)), "currency": c.currency})
    return rows
