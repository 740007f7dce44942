"""Trainings: the practice pools a Toloker must pass before a pool's real tasks.

A training shares the pools' id space and holds only control tasks (with hints). Workers take
its pages (``training_tasks_in_task_suite_count`` tasks each, in creation order unless it mixes
them) until they have done ``task_suites_required_to_pass``; the share they answered right is
their score for it, which a pool's ``quality_control.training_requirement`` compares with its
``training_passing_skill_value``. Mixed into :class:`TolokaState`, whose store it reads.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from .specs import solved
from .times import parse_ts


class Trainings:
    """Training behaviour of :class:`connectors.local.toloka.state.TolokaState` (which provides
    the attributes and helpers used here)."""

    store: dict[str, dict[str, dict[str, Any]]]
    training_scores: dict[tuple[str, str], Decimal]
    training_since: dict[tuple[str, str], datetime]  # a retake starts afresh from here

    def _may_train(self, training: dict[str, Any], user_id: str, profile: dict[str, Any]) -> bool:
        """A training is shown to those who would see a pool that requires it (all, if none does),
        until they have taken the suites it needs to pass; ``retry_training_after_days`` lets
        those who failed come back."""
        if (training["id"], user_id) in self.training_scores and not self._may_retake(training, user_id):
            return False
        needing = [
            p
            for p in self.store["pools"].values()
            if p["status"] == "OPEN"
            and str(((p.get("quality_control") or {}).get("training_requirement") or {}).get("training_pool_id"))
            == training["id"]
        ]
        return not needing or any(self.passes_filter(user_id, p.get("filter"), profile) for p in needing)

    def _may_retake(self, training: dict[str, Any], user_id: str) -> bool:
        days = training.get("retry_training_after_days")
        last = self._training_taken(training["id"], user_id)
        return bool(days and last and parse_ts(last[-1]["submitted"]) + timedelta(days=int(days)) <= self.now())

    def _training_taken(self, training_id: str, user_id: str) -> list[dict[str, Any]]:
        since = self.training_since.get((training_id, user_id))
        return [
            a
            for a in self.store["assignments"].values()
            if a["pool_id"] == training_id
            and a["user_id"] == user_id
            and a.get("submitted")
            and (since is None or parse_ts(a["created"]) >= since)
        ]

    def _training_suite(self, training: dict[str, Any], user_id: str, dry: bool = False) -> Any:
        """The worker's next training page: the next ``training_tasks_in_task_suite_count`` training
        tasks they have not seen, in creation order unless the training mixes them."""
        tasks = self.loose_by_pool[training["id"]]
        key = (training["id"], user_id)
        if key in self.training_scores:  # a retake: the worker starts the training over
            if not self._may_retake(training, user_id):
                return None
            if dry:
                return bool(tasks)
            del self.training_scores[key]
            self.training_since[key] = self.now()
            for t in tasks:
                self.done_by[("tasks", t["id"])].discard(user_id)
        unseen = [t for t in tasks if user_id not in self.done_by[("tasks", t["id"])]]
        if not unseen:
            return None
        if dry:
            return True
        if training.get("mix_tasks_in_creation_order") is False:
            unseen = self.rng.sample(unseen, len(unseen))
        chosen = unseen[: max(1, int(training.get("training_tasks_in_task_suite_count") or 1))]
        if training.get("shuffle_tasks_in_task_suite"):
            self.rng.shuffle(chosen)
        for t in chosen:
            self.done_by[("tasks", t["id"])].add(user_id)
        return self._new_suite(training, chosen)

    def _finish_training(self, training: dict[str, Any], user_id: str) -> None:
        """Once the worker took the suites a training needs (or ran out of them), their score is
        the percentage of training tasks they answered right: what training requirements gate on."""
        taken = self._training_taken(training["id"], user_id)
        left = self._training_suite(training, user_id, dry=True)
        if len(taken) < int(training.get("task_suites_required_to_pass") or 1) and left:
            return
        graded = [
            solved(sol["output_values"], self.store["tasks"][t["id"]].get("known_solutions") or [])
            for a in taken
            for t, sol in zip(a["tasks"], a["solutions"], strict=True)
        ]
        self.training_scores[(training["id"], user_id)] = (
            Decimal(100 * sum(graded)) / len(graded) if graded else Decimal(0)
        )
