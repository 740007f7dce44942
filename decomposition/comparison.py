"""Pairwise and listwise comparison campaigns: one stage, results from the whole stage at once.

Bradley-Terry rankings and Dawid-Skene labels are fitted on every judgement of the stage
together, so the results wait until the stage is done (``finish``): per-pair labels with
agreement and confidence on each task, per-prompt rankings, scores and preference pairs on each
item. Pairwise golden pairs also teach the aggregation which workers to trust (``known``).
"""

from __future__ import annotations

from typing import ClassVar

import pandas as pd

from decomposition.graph import StageGraph, StageNode, StageResults, StoredJudgement, TaskView
from decomposition.kinds import get_kind
from decomposition.pairwise import pair_key


def answer_of(value: dict) -> dict:
    """A stored comparison judgement back into the form fields its kind parses."""
    out = {"choice": value["choice"]}
    out.update(value.get("criteria") or {})
    return out


def judgement_frame(kind_name: str, judgements: list[StoredJudgement], *, include_golden: bool = False
                    ) -> pd.DataFrame:
    """One row per aggregation row of each judgement (``kind.rows`` + worker); a worker who met a
    task on more than one page counts with their first answer only."""
    kind = get_kind(kind_name)
    rows, seen = [], set()
    for j in judgements:
        if (j.golden and not include_golden) or (j.task_key, j.worker) in seen:
            continue
        seen.add((j.task_key, j.worker))
        for r in kind.rows(j.payload, kind.parse(j.payload, answer_of(j.value))):
            rows.append({**r, "worker": j.worker})
    return pd.DataFrame(rows)


def known_winners(golden: list[tuple[dict, dict | None]]) -> dict[str, str]:
    """Each golden pair's known winner by pair key, from (payload, golden answer) of the golden tasks."""
    known = {}
    for payload, answer in golden:
        side = (answer or {}).get("choice")
        if side in ("left", "right") and "left" in payload:
            known[pair_key(payload["prompt_id"], payload["left"]["id"], payload["right"]["id"])] = payload[side]["id"]
    return known


def golden_frame(judgements: list[StoredJudgement], tasks: list[TaskView]) -> tuple[pd.DataFrame, dict[str, str]]:
    """The judgements with their golden pairs, and each golden pair's known winner: what
    ``aggregate_pairwise(known=...)`` learns the workers from."""
    golden = [(t.payload, t.golden_answer) for t in tasks if t.golden]
    return judgement_frame("pairwise", judgements, include_golden=True), known_winners(golden)


class ComparisonGraph(StageGraph):
    per_item: ClassVar[bool] = False

    def __init__(self, kind: str) -> None:
        self.name = kind
        self.settings_kind = kind
        self.nodes = (StageNode(name="compare", kind=kind),)

    def finish(self, node: StageNode, judgements: list[StoredJudgement], tasks: list[TaskView],
               items: list[str], method: str) -> StageResults | None:
        from decomposition.aggregate import preference_pairs

        if self.name == "pairwise":
            frame, known = golden_frame(judgements, tasks)
        else:
            frame, known = judgement_frame(self.name, judgements), {}
        if frame.empty or frame["pair"].isin(list(known)).all():
            return None
        result = get_kind(self.name).aggregate(frame, method=method, **({"known": known} if known else {}))
        pairs = result.pairs[result.pairs["criterion"] == "overall"].set_index("pair")
        prefs: dict[str, list] = {}
        for p in preference_pairs(result):
            prefs.setdefault(p["prompt_id"], []).append(p)
        out = StageResults()
        for t in (t for t in tasks if not t.golden):
            key = pair_key(t.payload["prompt_id"], t.payload["left"]["id"], t.payload["right"]["id"])
            if key in pairs.index:
                row = pairs.loc[key]
                out.tasks[t.key] = {"label": row["label"], "agreement": float(row["agreement"]),
                                    "confidence": float(row["confidence"]), "judgements": int(row["n"]),
                                    "method": method}
        overall = result.scores[result.scores["criterion"] == "overall"]
        for item in items:
            mine = overall[overall["prompt"] == item].sort_values("rank")
            out.items[item] = {"ranking": mine["response_id"].tolist(),
                               "scores": {r: (None if pd.isna(v) else float(v))
                                          for r, v in zip(mine["response_id"], mine["score"], strict=True)},
                               "preferences": prefs.get(item, []), "method": method}
        return out


PAIRWISE = ComparisonGraph("pairwise")
LISTWISE = ComparisonGraph("listwise")
