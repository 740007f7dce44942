"""Verify: workers who wrote no candidate for a patch pick the best rewrite (or "keep the
original") and flag every acceptable one.

One task per patch; an ``item`` is a patch plus ``candidates`` (texts) and ``slots``. The form
has a fixed number of candidate slots (``slots``, the Fix overlap) so every Verify task of a
campaign has the same fields (a Toloka project has one spec); empty slots say so and choosing
one is an ``AnswerError``. Aggregation: majority vote or Dawid-Skene over the best-choice labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Choice, Display, MultiChoice, Widget
from decomposition.errors import AnswerError, ItemError
from decomposition.ffv import KEEP, FFVSettings, slot_id
from decomposition.fix import patch_payload, patch_widgets
from decomposition.kinds import Judgement, Rng, TaskDraft, TaskKind

EMPTY_SLOT = "(no candidate in this slot; do not choose it)"


class VerifyJudgement(Judgement):
    item_id: str
    patch_id: str
    best: str
    acceptable: list[str]


class VerifyKind(TaskKind):
    name = "verify"
    settings_model = FFVSettings

    def make_tasks(self, item: Mapping[str, Any], settings: Any, rng: Rng) -> list[TaskDraft]:
        s = self.settings(settings)
        payload = patch_payload(item, s.goal)
        candidates = [str(c) for c in item.get("candidates", [])]
        slots = int(item.get("slots", s.fix_workers))
        if not candidates or len(candidates) > slots:
            raise ItemError(f"a verify task needs 1 to {slots} candidates, got {len(candidates)}",
                            field="candidates")
        payload.update(candidates=candidates, slots=slots)
        return [TaskDraft(item_id=payload["item_id"], key_hint=f"verify-{payload['patch_id']}",
                          payload=payload)]

    def widgets(self, payload: Mapping[str, Any], settings: Any) -> list[Widget]:
        cands = payload["candidates"]
        slots = [slot_id(n) for n in range(payload["slots"])]
        shown = [Display(name=sid, label=f"Candidate {n + 1}", text=cands[n] if n < len(cands) else EMPTY_SLOT)
                 for n, sid in enumerate(slots)]
        return patch_widgets(payload) + shown + [
            Choice(name="best", label="Which version of the marked part is best for the goal?",
                   options=[(KEEP, "Keep the original")] + [(sid, f"Candidate {n + 1}")
                                                             for n, sid in enumerate(slots)]),
            MultiChoice(name="acceptable", label="Tick every candidate that is an acceptable fix",
                        options=[(sid, f"Candidate {n + 1}") for n, sid in enumerate(slots)])]

    def parse(self, payload: Mapping[str, Any], answer: Mapping[str, Any]) -> VerifyJudgement:
        if not isinstance(answer, Mapping):
            raise AnswerError(f"an answer must be an object of fields, got {type(answer).__name__}")
        filled = [slot_id(n) for n in range(len(payload["candidates"]))]
        best = answer.get("best")
        if best != KEEP and best not in filled:
            raise AnswerError(f"best must be {KEEP} or one of {', '.join(filled)}; got {best!r}", field="best")
        acceptable = answer.get("acceptable") or []
        if not isinstance(acceptable, list) or any(a not in filled for a in acceptable):
            raise AnswerError(f"acceptable must list candidates among {', '.join(filled)}", field="acceptable")
        return VerifyJudgement(item_id=payload["item_id"], patch_id=payload["patch_id"], best=best,
                               acceptable=sorted(set(acceptable)))

    def grade(self, payload: Mapping[str, Any], golden_answer: Mapping[str, Any], judgement: Any) -> bool:
        return judgement.best == golden_answer.get("best")

    def known_answer(self, payload: Mapping[str, Any], known: Mapping[str, Any]) -> dict[str, Any] | None:
        """``known`` is ``{"rewrite": text}``: the slot holding it (or keep when none does)."""
        if "rewrite" not in known:
            return None
        for n, cand in enumerate(payload["candidates"]):
            if cand == known["rewrite"]:
                return {"best": slot_id(n)}
        return {"best": KEEP}

    def rows(self, payload: Mapping[str, Any], judgement: Any) -> list[dict[str, Any]]:
        return [{"task": f"{judgement.item_id}/{judgement.patch_id}", "label": judgement.best,
                 "acceptable": list(judgement.acceptable)}]

    def aggregate(self, frame: Any, method: str = "mv", **options: Any) -> Any:
        """``task, label, confidence`` per patch (crowd-kit)."""
        from decomposition.aggregate import aggregate_labels

        return aggregate_labels(frame, method=method, seed=int(options.get("seed", 0)))


KIND = VerifyKind()
