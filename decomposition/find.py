"""Find: workers mark the weak spans of a text (character ranges with a reason category).

One task per text. A worker's answer is a list of ``{"start", "end", "label"}``; spans outside
the text, unknown labels, too many spans or marks over most of the text are an ``AnswerError``
(stored, excluded from aggregation). Aggregation turns every worker's marks on a text into
patches where at least ``threshold`` workers overlap (``decomposition.ffv.patches_from_spans``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from connectors.base import Display, SpanSelect, Widget
from decomposition.errors import AnswerError
from decomposition.ffv import FFVSettings, clean_spans, parse_text_item, patches_from_spans
from decomposition.kinds import Judgement, Rng, TaskDraft, TaskKind


class FindJudgement(Judgement):
    item_id: str
    spans: list[dict[str, Any]]


class FindKind(TaskKind):
    name = "find"
    settings_model = FFVSettings

    def make_tasks(self, item: Mapping[str, Any], settings: Any, rng: Rng) -> list[TaskDraft]:
        s = self.settings(settings)
        model = parse_text_item(item)
        payload = {"item_id": model.id, "prompt": model.prompt, "text": model.text, "goal": s.goal,
                   "labels": list(s.labels), "max_spans": s.max_spans, "max_span_share": s.max_span_share}
        return [TaskDraft(item_id=model.id, key_hint="find", payload=payload)]

    def widgets(self, payload: Mapping[str, Any], settings: Any) -> list[Widget]:
        return [Display(name="goal", label="Goal of the edit", text=payload["goal"]),
                Display(name="prompt", label="Prompt the text answers", text=payload.get("prompt") or "(none)"),
                SpanSelect(name="spans", label="Mark each part of the text that needs fixing for this goal "
                           "(mark only the words that are wrong)", text=payload["text"],
                           labels=list(payload["labels"]))]

    def parse(self, payload: Mapping[str, Any], answer: Mapping[str, Any]) -> FindJudgement:
        if not isinstance(answer, Mapping):
            raise AnswerError(f"an answer must be an object of fields, got {type(answer).__name__}")
        limits = FFVSettings(max_spans=payload["max_spans"], max_span_share=payload["max_span_share"])
        spans = clean_spans(answer.get("spans", []), payload["text"], payload["labels"], limits)
        return FindJudgement(item_id=payload["item_id"], spans=spans)

    def grade(self, payload: Mapping[str, Any], golden_answer: Mapping[str, Any], judgement: Any) -> bool:
        """Every known weak span must overlap a mark."""
        return all(any(m["start"] < k["end"] and k["start"] < m["end"] for m in judgement.spans)
                   for k in golden_answer.get("spans", []))

    def known_answer(self, payload: Mapping[str, Any], known: Mapping[str, Any]) -> dict[str, Any] | None:
        return {"spans": list(known["spans"])} if "spans" in known else None

    def rows(self, payload: Mapping[str, Any], judgement: Any) -> list[dict[str, Any]]:
        """One row per mark; a worker who marked nothing still gives one row (start None) so the
        threshold counts them."""
        j: FindJudgement = judgement
        if not j.spans:
            return [{"item": j.item_id, "start": None, "end": None, "label": None}]
        return [{"item": j.item_id, **s} for s in j.spans]

    def aggregate(self, frame: Any, method: str = "overlap", *, texts: Mapping[str, str] | None = None,
                  settings: Any = None, **options: Any) -> dict[str, list[tuple[int, int]]]:
        """Patches per item: ``texts`` maps item id to its text."""
        s = self.settings(settings)
        out: dict[str, list[tuple[int, int]]] = {}
        if frame is None or len(frame) == 0:
            return out
        for item, g in pd.DataFrame(frame).groupby("item"):
            per_worker = [[(int(r.start), int(r.end)) for r in w.itertuples() if pd.notna(r.start)]
                          for _, w in g.groupby("worker")]
            out[str(item)] = patches_from_spans(texts[str(item)], per_worker, s.threshold(len(per_worker)))
        return out


KIND = FindKind()
