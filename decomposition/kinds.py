"""The task-kind interface: one module per kind (pairwise, listwise, later find/fix/verify/classify).

A kind turns an input item into task drafts, says which widgets a worker sees, validates an
answer into a typed judgement, grades judgements on golden tasks, and turns judgements into
rows that its aggregator reads. Every kind has the same small interface, so the campaign engine
is written once and a new kind is one new file (plus one line in ``_KIND_MODULES``).

Typical use by the engine::

    kind = get_kind("pairwise")
    settings = kind.settings({"allow_tie": True})
    drafts = kind.make_tasks(item, settings, rng)
    page_item = to_page_item(kind, drafts[0], "item-1/p0-1", settings)
    judgement = kind.parse(drafts[0].payload, {"choice": "left"})
    rows = kind.rows(drafts[0].payload, judgement)          # + worker -> aggregation frame
    result = kind.aggregate(frame, method="ds")
"""

from __future__ import annotations

import importlib
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from connectors.base import PageItem, Widget
from decomposition.errors import InputError, first_error

Rng = random.Random | int | None


def as_rng(rng: Rng) -> random.Random:
    """Accept a ``random.Random`` or a seed, so every design is reproducible from one seed."""
    return rng if isinstance(rng, random.Random) else random.Random(rng)


class TaskDraft(BaseModel):
    """One task before it is published. ``payload`` holds everything needed to render, parse
    and aggregate it later (so answers can be interpreted without the original item)."""

    model_config = ConfigDict(extra="forbid")

    item_id: str
    key_hint: str  # unique within the item, stable for the same item, settings and seed
    payload: dict[str, Any]
    golden_answer: dict[str, Any] | None = None  # the answer a worker should give, in form fields

    @property
    def key(self) -> str:
        """A task key unique within a stage."""
        return f"{self.item_id}/{self.key_hint}"


class Judgement(BaseModel):
    """A validated answer; each kind subclasses it with typed fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class TaskKind(ABC):
    name: ClassVar[str]
    settings_model: ClassVar[type[BaseModel]]

    def settings(self, raw: BaseModel | Mapping[str, Any] | None = None) -> Any:
        """Validate settings given as this kind's model, another pydantic model or a mapping."""
        if isinstance(raw, self.settings_model):
            return raw
        data = raw.model_dump() if isinstance(raw, BaseModel) else dict(raw or {})
        try:
            return self.settings_model.model_validate(data)
        except ValidationError as err:
            field, msg = first_error(err)
            raise InputError(msg, field=f"{self.name} settings.{field}") from None

    @abstractmethod
    def make_tasks(self, item: Mapping[str, Any], settings: Any, rng: Rng) -> list[TaskDraft]:
        """Validate one input item (raising ``ItemError``) and design its tasks."""

    @abstractmethod
    def widgets(self, payload: Mapping[str, Any], settings: Any) -> list[Widget]:
        """What the worker sees and answers for one task."""

    @abstractmethod
    def parse(self, payload: Mapping[str, Any], answer: Mapping[str, Any]) -> Judgement:
        """Validate a neutral answer ``{field: value}``; raise ``AnswerError`` when it does not fit."""

    @abstractmethod
    def grade(self, payload: Mapping[str, Any], golden_answer: Mapping[str, Any],
              judgement: Judgement) -> bool:
        """True when ``judgement`` agrees with the golden answer."""

    @abstractmethod
    def known_answer(self, payload: Mapping[str, Any], known: Mapping[str, Any]) -> dict[str, Any] | None:
        """The golden answer (in form fields) a task must get, given an item's known answer; None
        when the known answer does not decide this task."""

    @abstractmethod
    def rows(self, payload: Mapping[str, Any], judgement: Judgement) -> list[dict[str, Any]]:
        """Aggregation rows for one judgement (the caller adds ``worker``)."""

    @abstractmethod
    def aggregate(self, frame: Any, method: str = "ds", **options: Any) -> Any:
        """Aggregate a DataFrame of ``rows`` (plus ``worker``) for a whole stage at once."""


def to_page_item(kind: TaskKind, draft: TaskDraft, item_key: str, settings: Any) -> PageItem:
    """The neutral page item a connector publishes; golden items carry their known answer."""
    return PageItem(item_key=item_key, widgets=kind.widgets(draft.payload, settings),
                    golden=draft.golden_answer is not None, known_answer=draft.golden_answer)


_KIND_MODULES = {
    "pairwise": "decomposition.pairwise",
    "listwise": "decomposition.listwise",
    "find": "decomposition.find",
    "fix": "decomposition.fix",
    "verify": "decomposition.verify",
}


def get_kind(name: str) -> TaskKind:
    """The task kind called ``name``; each kind module exposes its instance as ``KIND``."""
    module = _KIND_MODULES.get(name)
    if module is None:
        raise InputError(f"unknown task kind {name!r} (known: {', '.join(sorted(_KIND_MODULES))})")
    return importlib.import_module(module).KIND


def kind_names() -> list[str]:
    return sorted(_KIND_MODULES)
