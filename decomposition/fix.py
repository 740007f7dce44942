"""Fix: a worker sees the text with one patch marked and writes a replacement for the patch.

One task per patch (an ``item`` here is a patch: ``{"id", "patch_id", "start", "end", "text",
"prompt"?}``). An empty rewrite or one identical to the original is an ``AnswerError`` with a
message the worker gets back when the assignment is rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Display, TextInput, Widget
from decomposition.errors import AnswerError, ItemError
from decomposition.ffv import FFVSettings, candidate_slots, marked, same_text
from decomposition.kinds import Judgement, Rng, TaskDraft, TaskKind


class FixJudgement(Judgement):
    item_id: str
    patch_id: str
    rewrite: str


def patch_payload(patch: Mapping[str, Any], goal: str) -> dict[str, Any]:
    """What Fix and Verify tasks of one patch carry (validated)."""
    try:
        text, start, end = patch["text"], int(patch["start"]), int(patch["end"])
        item_id, patch_id = str(patch["id"]), str(patch["patch_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ItemError(f"a patch needs id, patch_id, text, start and end: {exc}") from None
    if not 0 <= start < end <= len(text):
        raise ItemError(f"patch {start}-{end} is outside the text", field="start")
    return {"item_id": item_id, "patch_id": patch_id, "start": start, "end": end, "original": text[start:end],
            "text": text, "prompt": patch.get("prompt"), "goal": goal}


def patch_widgets(payload: Mapping[str, Any]) -> list[Widget]:
    return [Display(name="goal", label="Goal of the edit", text=payload["goal"]),
            Display(name="text", label="The text (the part to rewrite is between [[ and ]])",
                    text=marked(payload["text"], payload["start"], payload["end"])),
            Display(name="original", label="The part to rewrite", text=payload["original"])]


class FixKind(TaskKind):
    name = "fix"
    settings_model = FFVSettings

    def make_tasks(self, item: Mapping[str, Any], settings: Any, rng: Rng) -> list[TaskDraft]:
        s = self.settings(settings)
        payload = patch_payload(item, s.goal)
        return [TaskDraft(item_id=payload["item_id"], key_hint=f"fix-{payload['patch_id']}", payload=payload)]

    def widgets(self, payload: Mapping[str, Any], settings: Any) -> list[Widget]:
        return patch_widgets(payload) + [
            TextInput(name="rewrite", label="Rewrite the marked part so that it meets the goal",
                      default=payload["original"], multiline=False)]

    def parse(self, payload: Mapping[str, Any], answer: Mapping[str, Any]) -> FixJudgement:
        if not isinstance(answer, Mapping):
            raise AnswerError(f"an answer must be an object of fields, got {type(answer).__name__}")
        rewrite = answer.get("rewrite")
        if not isinstance(rewrite, str):
            raise AnswerError("missing rewrite", field="rewrite")
        if not rewrite.strip():
            raise AnswerError("the rewrite is empty", field="rewrite")
        if same_text(rewrite, payload["original"]):
            raise AnswerError("the rewrite is identical to the original; change the marked part",
                              field="rewrite")
        return FixJudgement(item_id=payload["item_id"], patch_id=payload["patch_id"], rewrite=rewrite.strip())

    def grade(self, payload: Mapping[str, Any], golden_answer: Mapping[str, Any], judgement: Any) -> bool:
        return same_text(judgement.rewrite, str(golden_answer.get("rewrite", "")))

    def known_answer(self, payload: Mapping[str, Any], known: Mapping[str, Any]) -> dict[str, Any] | None:
        return {"rewrite": known["rewrite"]} if "rewrite" in known else None

    def rows(self, payload: Mapping[str, Any], judgement: Any) -> list[dict[str, Any]]:
        return [{"task": f"{judgement.item_id}/{judgement.patch_id}", "rewrite": judgement.rewrite}]

    def aggregate(self, frame: Any, method: str = "slots", *, originals: Mapping[str, str] | None = None,
                  slots: int = 5, **options: Any) -> dict[str, list[str]]:
        """Verify candidates per patch task: distinct rewrites, most frequent first."""
        out: dict[str, list[str]] = {}
        if frame is None or len(frame) == 0:
            return out
        for task, g in frame.groupby("task", sort=False):
            out[str(task)] = candidate_slots(list(g["rewrite"]), (originals or {}).get(str(task), ""), slots)
        return out


KIND = FixKind()
