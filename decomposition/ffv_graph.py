"""Find-Fix-Verify as a stage graph: each item moves through the stages on its own.

Why per item: a text whose Find answers are all in should not wait for the slowest text of the
campaign before its patches are fixed. Item states (``result["state"]``): ``find`` -> ``fix`` ->
``verify`` -> ``done``. A text with no patch goes to ``done`` unchanged or is asked again
(``no_patch: reask``); a patch with no usable rewrite is kept as it was. Verify votes from workers
who wrote a candidate for the same patch are left out of the vote (neither marketplace can
exclude them per patch up front) and counted in the patch's ``excluded_votes``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, ClassVar

from decomposition.ffv import KEEP, FFVSettings, apply_fixes, candidate_slots, patches_from_spans
from decomposition.graph import DONE, Answers, ItemView, Move, StageGraph, StageNode, StageReader, TaskView
from decomposition.kinds import get_kind


class FindFixVerify(StageGraph):
    name: ClassVar[str] = "ffv"
    settings_kind: ClassVar[str] = "find"
    per_item: ClassVar[bool] = True
    waves: ClassVar[bool] = False
    nodes: ClassVar[tuple[StageNode, ...]] = (
        StageNode("find", "find", "Find the weak parts of a text",
                  "Read a short text and mark the parts that need fixing.",
                  workers="find_workers", minimum="find_min", latest_only=True),
        StageNode("fix", "fix", "Fix one marked part of a text", "Rewrite one marked part of a short text.",
                  workers="fix_workers", minimum="fix_min"),
        StageNode("verify", "verify", "Pick the best fix of a text",
                  "Compare rewrites of one part of a text and pick the best.",
                  workers="verify_workers", minimum="verify_min"),
    )

    def advance(self, node: StageNode, item: ItemView, tasks: Sequence[TaskView], answers: Answers,
                settings: FFVSettings, context: Any) -> Move:
        step = {"find": after_find, "fix": after_fix, "verify": after_verify}[node.name]
        result, drafts = step(item, list(tasks), answers, settings, context)
        return Move(result, drafts)

    def context(self, node: StageNode, settings: FFVSettings, read: StageReader, blocked: set[str]) -> Any:
        return verify_context(read, settings, blocked) if node.name == "verify" else None

    def usable(self, node: StageNode, task: TaskView, answers: list[tuple[str, dict]], context: Any
               ) -> list[tuple[str, dict]]:
        if node.name != "verify":
            return answers
        writers = context["writers"][f"{task.payload['item_id']}/{task.payload['patch_id']}"]
        return [a for a in answers if a[0] not in writers]


def after_find(item: ItemView, tasks: list[TaskView], answers: Answers, settings: FFVSettings, _ctx
               ) -> tuple[dict, list]:
    text = item.payload["text"]
    latest = tasks[-1]  # a re-asked text is judged on its latest round
    per_worker = [[(sp["start"], sp["end"]) for sp in value["spans"]] for _w, value in answers[latest.id]]
    threshold = settings.threshold(len(per_worker))
    patches = patches_from_spans(text, per_worker, threshold) if per_worker else []
    find = {"workers": len(per_worker), "threshold": threshold, "rounds": len(tasks),
            "below_min": len(per_worker) < settings.find_min}
    if patches:
        ps = [{"id": f"p{a}-{b}", "start": a, "end": b, "original": text[a:b]} for a, b in patches]
        fix = get_kind("fix")
        drafts = [d for p in ps for d in fix.make_tasks(
            {"id": item.external_id, "patch_id": p["id"], "start": p["start"], "end": p["end"], "text": text,
             "prompt": item.payload.get("prompt")}, settings, 0)]
        return {"state": "fix", "find": find, "patches": ps}, drafts
    if settings.no_patch == "reask" and len(tasks) <= settings.max_reasks:
        (draft,) = get_kind("find").make_tasks(item.payload, settings, 0)
        return ({"state": "find", "find": find},
                [draft.model_copy(update={"key_hint": f"find-r{len(tasks)}"})])
    return assemble(item, {"find": find, "patches": []}), []


def after_fix(item: ItemView, tasks: list[TaskView], answers: Answers, settings: FFVSettings, _ctx
              ) -> tuple[dict, list]:
    result = dict(item.result)
    by_patch = {t.payload["patch_id"]: t for t in tasks}
    slots = settings.fix_workers
    verify = get_kind("verify")
    drafts = []
    patches = []
    for p in result["patches"]:
        task = by_patch.get(p["id"])
        rewrites = [v["rewrite"] for _w, v in answers[task.id]] if task else []
        counts = Counter(r.strip() for r in rewrites)
        cands = candidate_slots(rewrites, p["original"], slots)
        p = {**p, "fix_answers": len(rewrites), "below_min": len(rewrites) < settings.fix_min,
             "candidates": [{"id": f"c{n + 1}", "text": c, "writers": counts[c]} for n, c in enumerate(cands)]}
        patches.append(p)
        if cands:
            drafts += verify.make_tasks(
                {"id": item.external_id, "patch_id": p["id"], "start": p["start"], "end": p["end"],
                 "text": item.payload["text"], "prompt": item.payload.get("prompt"), "candidates": cands,
                 "slots": slots}, settings, 0)
    result["patches"] = patches
    if not drafts:
        return assemble(item, result), []
    result["state"] = "verify"
    return result, drafts


def verify_context(read: StageReader, settings: FFVSettings, blocked: set[str]) -> dict[str, Any]:
    """What every Verify decision needs: who wrote candidates for which patch, and the stage's
    aggregated labels (one crowd-kit fit over the whole stage, authors' votes left out)."""
    import pandas as pd

    writers: dict[str, set[str]] = defaultdict(set)
    for worker, value in read("fix", False):
        writers[f"{value['item_id']}/{value['patch_id']}"].add(worker)
    rows, excluded = [], Counter()
    for worker, value in read("verify", True):
        task = f"{value['item_id']}/{value['patch_id']}"
        if worker in writers[task]:
            excluded[task] += 1
        elif worker not in blocked:
            rows.append({"task": task, "worker": worker, "label": value["best"],
                         "acceptable": value.get("acceptable", [])})
    frame = pd.DataFrame(rows, columns=["task", "worker", "label", "acceptable"])
    labels = get_kind("verify").aggregate(frame, method=settings.method) if len(frame) else pd.DataFrame()
    return {"frame": frame, "excluded": excluded, "writers": writers,
            "labels": {r.task: (r.label, float(r.confidence)) for r in labels.itertuples()} if len(labels) else {}}


def after_verify(item: ItemView, tasks: list[TaskView], answers: Answers, settings: FFVSettings, ctx
                 ) -> tuple[dict, list]:
    result = dict(item.result)
    frame = ctx["frame"]
    patches = []
    for p in result["patches"]:
        task = f"{item.external_id}/{p['id']}"
        mine = frame[frame["task"] == task]
        votes = Counter(mine["label"])
        accept = Counter(a for acc in mine["acceptable"] for a in acc)
        label, confidence = ctx["labels"].get(task, (KEEP, None))
        texts = {c["id"]: c["text"] for c in p.get("candidates", [])}
        top = max(votes.values(), default=0)
        tied = [lab for lab, n in votes.items() if n == top]
        if settings.method == "mv" and len(tied) > 1:  # a split vote changes nothing, else the
            writers = {c["id"]: c["writers"] for c in p.get("candidates", [])}  # better-supported one
            label = KEEP if KEEP in tied else max(tied, key=lambda c: (accept[c], writers.get(c, 0)))
        if label != KEEP and label not in texts:
            label = KEEP
        total = sum(votes.values())
        patches.append({**p, "votes": dict(votes), "acceptable": dict(accept), "winner": label,
                        "winner_text": texts.get(label), "confidence": confidence,
                        "agreement": round(votes[label] / total, 4) if total else None,
                        "verify_votes": total, "excluded_votes": ctx["excluded"].get(task, 0),
                        "below_min": total < settings.verify_min})
    result["patches"] = patches
    return assemble(item, result), []


def assemble(item: ItemView, result: dict) -> dict:
    """The item's final result: the winning fixes applied to its text."""
    text = item.payload["text"]
    patches = [{**p, "winner": p.get("winner", KEEP), "winner_text": p.get("winner_text")}
               for p in result.get("patches", [])]
    fixes = [(p["start"], p["end"], p["winner_text"]) for p in patches if p["winner"] != KEEP]
    revised = apply_fixes(text, fixes)
    return {**result, "state": DONE, "patches": patches, "original": text, "revised": revised,
            "changed": revised != text, "fixes": len(fixes)}


GRAPH = FindFixVerify()
