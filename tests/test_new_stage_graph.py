"""A multi-stage kind the engine has never seen, added as one stage graph: write-then-rank.

Workers rewrite a text (the ``fix`` task kind on the whole text), then others pick the best
rewrite (``verify``). The graph is defined here and registered for the test only; the campaign
runs through launch, polls and finishing on the local MTurk and Toloka with a random crowd, with
no change to the engine: the proof that a new kind is one module in ``decomposition/``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import ClassVar

import pytest
from engine_helpers import check_consistent, launch_in_process, poll_in_process
from sqlmodel import select

from campaigns.store.database import open_store
from campaigns.store.models import Campaign, Item, Stage, Task
from connectors.local import start_local
from decomposition import graph
from decomposition.ffv import KEEP, candidate_slots
from decomposition.graph import DONE, Move, StageGraph, StageNode
from decomposition.kinds import get_kind

TEXTS = ["The tower were built in 1889.", "Water boil at 100 degrees.", "She go to school every day.",
         "Paris is the capitol of France."]


class WriteThenRank(StageGraph):
    name: ClassVar[str] = "write-rank"
    settings_kind: ClassVar[str] = "fix"
    per_item: ClassVar[bool] = True
    waves: ClassVar[bool] = False
    nodes: ClassVar[tuple[StageNode, ...]] = (
        StageNode("write", "fix", "Rewrite a sentence", workers="fix_workers", minimum="fix_min"),
        StageNode("rank", "verify", "Pick the best rewrite", workers="verify_workers", minimum="verify_min"),
    )

    def advance(self, node, item, tasks, answers, settings, context) -> Move:
        (task,) = tasks
        if node.name == "write":
            rewrites = [v["rewrite"] for _w, v in answers[task.id]]
            cands = candidate_slots(rewrites, task.payload["original"], settings.fix_workers)
            if not cands:
                return Move({"state": DONE, "best": None, "rewrites": len(rewrites)})
            drafts = get_kind("verify").make_tasks({**item.payload, "candidates": cands,
                                                    "slots": settings.fix_workers}, settings, 0)
            return Move({"state": "rank", "candidates": cands, "rewrites": len(rewrites)}, drafts)
        votes = Counter(v["best"] for _w, v in answers[task.id])
        best = max(sorted(votes), key=votes.get)
        texts = dict(zip([f"c{n + 1}" for n in range(len(item.result["candidates"]))], item.result["candidates"],
                         strict=True))
        return Move({**item.result, "state": DONE, "votes": dict(votes),
                     "best": None if best == KEEP else texts.get(best)})


GRAPH = WriteThenRank()


@pytest.fixture
def write_rank(monkeypatch):
    monkeypatch.setitem(graph._GRAPHS, "write-rank", (__name__, "GRAPH"))


@pytest.mark.parametrize("provider", ["mturk", "toloka"])
def test_a_new_multi_stage_kind_runs_through_the_engine_unchanged(tmp_path: Path, provider: str, write_rank):
    rows = [{"id": f"t{n}", "patch_id": "all", "start": 0, "end": len(t), "text": t} for n, t in enumerate(TEXTS)]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: write-rank\nprovider: {provider}\nkind: write-rank\nitems: items.jsonl\npage_size: 1\n"
                    "settings: {fix_workers: 3, fix_min: 2, verify_workers: 3, verify_min: 2}\n"
                    "stages: {rank: {pricing: {reward: 0.02}}}\n"
                    "pricing: {reward: 0.05}\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'crowd.db'}"
    with start_local(provider, workers=12, spammers=0.0, seed=5) as mp:
        launch_in_process(spec, db, mp.url)
        for _ in range(12):
            mp.advance(120)
            if poll_in_process(db, mp.url):
                break
        check_consistent(db, mp)
    with open_store(db) as store, store.session() as s:
        assert s.exec(select(Campaign.status)).one() == "done"
        stages = {st.name: st for st in s.exec(select(Stage)).all()}
        assert list(stages) == ["write", "rank"] and all(st.status == "done" for st in stages.values())
        assert stages["rank"].reward < stages["write"].reward  # the stage's own pricing override
        results = [i.result for i in s.exec(select(Item).order_by(Item.id)).all()]
        assert all(r["state"] == DONE for r in results)
        ranked = [r for r in results if "candidates" in r]
        assert ranked, "some text reached the rank stage"
        rank_tasks = s.exec(select(Task).where(Task.stage_id == stages["rank"].id)).all()
        assert len(rank_tasks) == len(ranked)  # one rank task per item that had candidates, none twice
        assert all(r["best"] in (None, *r["candidates"]) for r in ranked)
