"""The per-item Find-Fix-Verify steps on their own (no marketplace): what an item does with its
answers at the end of each stage, including the no-patch policy and split Verify votes."""

from __future__ import annotations

import pandas as pd

from decomposition.ffv import KEEP, FFVSettings
from decomposition.ffv_graph import after_find as _after_find
from decomposition.ffv_graph import after_fix as _after_fix
from decomposition.ffv_graph import after_verify as _after_verify
from decomposition.ffv_graph import assemble
from decomposition.graph import ItemView, TaskView

TEXT = "The tower was built in 1869. It are tall."


def item(result=None) -> ItemView:
    return ItemView(external_id="t1", payload={"id": "t1", "prompt": "Q?", "text": TEXT}, result=result or {})


def task(task_id: int, **payload) -> TaskView:
    return TaskView(id=task_id, key=f"k{task_id}", payload=payload)


def spans(*words: str) -> dict:
    return {"item_id": "t1", "spans": [{"start": TEXT.index(w), "end": TEXT.index(w) + len(w), "label": "other"}
                                      for w in words]}


def test_find_makes_one_fix_task_per_patch():
    answers = {1: [("a", spans("1869")), ("b", spans("1869", "are")), ("c", spans("are")), ("d", spans())]}
    result, drafts = _after_find(item(), [task(1)], answers, FFVSettings(), None)
    assert result["state"] == "fix" and result["find"]["threshold"] == 1
    assert [p["original"] for p in result["patches"]] == ["1869", "are"]
    assert [d.payload["original"] for d in drafts] == ["1869", "are"]


def test_a_text_without_patch_is_done_unchanged_or_asked_again():
    answers = {1: [("a", spans()), ("b", spans("tower"))], 2: [("c", spans())]}
    done, drafts = _after_find(item(), [task(1)], answers, FFVSettings(patch_share=1.0), None)
    assert done["state"] == "done" and done["revised"] == TEXT and not drafts
    again, drafts = _after_find(item(), [task(1)], answers, FFVSettings(patch_share=1.0, no_patch="reask"), None)
    assert again["state"] == "find" and [d.key_hint for d in drafts] == ["find-r1"]
    # the re-asked round is judged on its own answers, and only one re-ask is allowed by default
    last, drafts = _after_find(item(), [task(1), task(2)], answers, FFVSettings(no_patch="reask"), None)
    assert last["state"] == "done" and not drafts


def test_fix_sends_distinct_rewrites_to_verify_and_keeps_a_patch_nobody_fixed():
    patches = [{"id": "p1", "start": 23, "end": 27, "original": "1869"},
               {"id": "p2", "start": 32, "end": 35, "original": "are"}]
    it = item({"state": "fix", "patches": patches})
    tasks = [task(1, patch_id="p1"), task(2, patch_id="p2")]
    answers = {1: [("a", {"rewrite": "1889"}), ("b", {"rewrite": "1889"}), ("c", {"rewrite": "1899"})], 2: []}
    result, drafts = _after_fix(it, tasks, answers, FFVSettings(), None)
    assert result["state"] == "verify"
    assert [c["text"] for c in result["patches"][0]["candidates"]] == ["1889", "1899"]
    assert result["patches"][1]["candidates"] == [] and result["patches"][1]["below_min"]
    assert len(drafts) == 1 and drafts[0].payload["candidates"] == ["1889", "1899"]


def verify_result(votes: list[tuple[str, str]], excluded: int = 0):
    cands = [{"id": "c1", "text": "1889", "writers": 2}, {"id": "c2", "text": "1899", "writers": 1}]
    it = item({"state": "verify", "patches": [{"id": "p1", "start": 23, "end": 27, "original": "1869",
                                                "candidates": cands}]})
    frame = pd.DataFrame([{"task": "t1/p1", "worker": w, "label": lab, "acceptable": [lab] if lab != KEEP else []}
                          for w, lab in votes], columns=["task", "worker", "label", "acceptable"])
    from decomposition.kinds import get_kind

    labels = get_kind("verify").aggregate(frame, method="mv") if len(frame) else pd.DataFrame()
    ctx = {"frame": frame, "excluded": {"t1/p1": excluded},
           "labels": {r.task: (r.label, float(r.confidence)) for r in labels.itertuples()}}
    return _after_verify(it, [task(1, patch_id="p1")], {}, FFVSettings(), ctx)[0]


def test_verify_applies_the_majority_winner():
    r = verify_result([("a", "c1"), ("b", "c1"), ("c", KEEP)], excluded=2)
    assert r["state"] == "done" and r["revised"] == TEXT.replace("1869", "1889")
    p = r["patches"][0]
    assert (p["winner"], p["agreement"], p["verify_votes"], p["excluded_votes"]) == ("c1", 0.6667, 3, 2)


def test_a_split_vote_with_keep_changes_nothing():
    r = verify_result([("a", "c2"), ("b", KEEP)])
    assert r["patches"][0]["winner"] == KEEP and r["revised"] == TEXT and not r["changed"]


def test_assemble_applies_every_winning_fix():
    it = item()
    r = assemble(it, {"patches": [{"id": "p1", "start": 23, "end": 27, "original": "1869", "winner": "c1",
                                   "winner_text": "1889"},
                                  {"id": "p2", "start": 32, "end": 35, "original": "are", "winner": "c1",
                                   "winner_text": "is"}]})
    assert r["revised"] == "The tower was built in 1889. It is tall." and r["fixes"] == 2
