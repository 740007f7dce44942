"""Stage graphs: which stages a campaign kind has, and how an item moves between them.

A campaign's ``kind:`` names a graph. Its nodes are the stages (each one task kind from
``decomposition.kinds``); the engine plans the first node at launch, creates the others when an
item first needs them, and after every poll asks the graph what each ready item does next. So
the engine knows no kind by name: Find-Fix-Verify is one graph here (``ffv_graph``), pairwise
and listwise are one-stage graphs (``comparison``), and a new multi-stage kind (say,
write-then-rank) is one new module plus one line in ``_GRAPHS``.

Two ways a graph ends, one per style:
- a one-stage graph's results come from the whole stage once it is done (``finish``: aggregate
  every judgement at once, as Bradley-Terry and Dawid-Skene need);
- a per-item graph (``per_item``) moves each item on by itself (``advance``), as soon as its
  tasks in the current stage are answered, and assembles the item's result when it reaches
  ``DONE``.

Everything here is pure: the engine reads the store and hands over plain values.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from decomposition.errors import InputError
from decomposition.kinds import TaskDraft, get_kind

DONE = "done"  # the state of an item that has left the last stage

# (worker, value) of valid judgements; ``read(stage, approved)`` gives a whole stage's
Answers = dict[int, list[tuple[str, dict]]]
StageReader = Callable[[str, bool], list[tuple[str, dict]]]


@dataclass(frozen=True)
class StageNode:
    name: str  # the stage's name in the spec (``stages:``) and the store
    kind: str  # the task kind of its tasks
    title: str | None = None  # the batch title workers see (None: the spec's ``title``)
    description: str | None = None
    workers: str | None = None  # settings field that sets the stage's overlap (None: the spec's)
    minimum: str | None = None  # settings field: usable answers a task needs before its item moves on
    latest_only: bool = False  # only the item's latest task here must be answered (re-asked rounds)


@dataclass(frozen=True)
class TaskView:
    id: int
    key: str
    payload: dict[str, Any]
    golden: bool = False
    golden_answer: dict[str, Any] | None = None


@dataclass(frozen=True)
class ItemView:
    external_id: str
    payload: dict[str, Any]
    result: dict[str, Any]


@dataclass
class Move:
    """An item's next step: its new ``result`` (``result["state"]`` is a node name or ``DONE``)
    and the tasks it now needs in the stage that state names."""

    result: dict[str, Any]
    drafts: list[TaskDraft] = field(default_factory=list)

    @property
    def state(self) -> str:
        return self.result["state"]


@dataclass(frozen=True)
class StoredJudgement:
    """One valid judgement as a finished stage's results read it."""

    task_key: str
    payload: dict[str, Any]
    golden: bool
    golden_answer: dict[str, Any] | None
    worker: str
    value: dict[str, Any]


@dataclass
class StageResults:
    tasks: dict[str, dict] = field(default_factory=dict)  # task key -> result
    items: dict[str, dict] = field(default_factory=dict)  # item id -> result


class StageGraph:
    name: ClassVar[str]
    nodes: ClassVar[tuple[StageNode, ...]]
    settings_kind: ClassVar[str]  # the kind whose settings model reads the spec's ``settings:``
    per_item: ClassVar[bool] = False
    waves: ClassVar[bool] = True  # the first stage may be published in waves (``wave:``)

    @property
    def first(self) -> StageNode:
        return self.nodes[0]

    def stage_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    def node(self, name: str) -> StageNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def settings(self, raw: Any) -> Any:
        return get_kind(self.settings_kind).settings(raw)

    def overlap(self, node: StageNode, settings: Any) -> int | None:
        """The stage's fixed overlap from the kind's settings, or None (the spec's overlap)."""
        return getattr(settings, node.workers) if node.workers else None

    def minimum(self, node: StageNode, settings: Any) -> int:
        return getattr(settings, node.minimum) if node.minimum else 1

    def state_of(self, result: Mapping[str, Any] | None) -> str:
        return (result or {}).get("state", self.first.name)

    def order(self, state: str) -> int:
        """A state's position: nodes in order, then ``DONE``."""
        return len(self.nodes) if state == DONE else self.stage_names().index(state)

    # ----------------------------------------------------------- per-item graphs
    def context(self, node: StageNode, settings: Any, read: StageReader, blocked: set[str]) -> Any:
        """What every decision in ``node`` needs from the whole campaign (computed once per step)."""
        return None

    def usable(self, node: StageNode, task: TaskView, answers: list[tuple[str, dict]], context: Any
               ) -> list[tuple[str, dict]]:
        """The answers of ``task`` that count towards its minimum."""
        return answers

    def advance(self, node: StageNode, item: ItemView, tasks: Sequence[TaskView], answers: Answers,
                settings: Any, context: Any) -> Move:
        raise NotImplementedError(f"{self.name} does not move items between stages")

    # ----------------------------------------------------------- one-stage graphs
    def finish(self, node: StageNode, judgements: list[StoredJudgement], tasks: list[TaskView],
               items: list[str], method: str) -> StageResults | None:
        """The results of a finished stage; None when the stage has nothing to aggregate."""
        return None


_GRAPHS = {
    "pairwise": ("decomposition.comparison", "PAIRWISE"),
    "listwise": ("decomposition.comparison", "LISTWISE"),
    "ffv": ("decomposition.ffv_graph", "GRAPH"),
}


def get_graph(name: str) -> StageGraph:
    """The stage graph of campaign kind ``name``."""
    where = _GRAPHS.get(name)
    if where is None:
        raise InputError(f"unknown campaign kind {name!r} (known: {', '.join(sorted(_GRAPHS))})")
    return getattr(importlib.import_module(where[0]), where[1])


def graph_names() -> list[str]:
    return sorted(_GRAPHS)
