"""Golden tasks: tasks with a known answer, mixed into pages to measure worker accuracy.

Two sources: golden items given in the spec (an item plus its known ``answer``), and synthetic
pairwise golden tasks, a response against a degraded copy of itself (sentences shuffled, cut to
about 40%) where the original must win — cheap to make and unambiguous for an attentive worker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from decomposition.errors import InputError, ItemError
from decomposition.kinds import Judgement, Rng, TaskDraft, TaskKind, as_rng
from decomposition.pairwise import KIND as PAIRWISE
from decomposition.pairwise import parse_item

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
MIN_WORDS = 6  # shorter responses make degraded copies that are too easy to confuse


def golden_tasks(kind: TaskKind, items: Iterable[Mapping[str, Any]], settings: Any, rng: Rng
                 ) -> list[TaskDraft]:
    """Golden drafts from spec items that carry ``answer`` (for pairwise/listwise:
    ``{"ranking": [ids, best first]}``; pairwise also ``{"best": id}``). Tasks the known answer
    does not decide (e.g. two responses both outside a partial ranking) are left out."""
    r = as_rng(rng)
    out = []
    for item in items:
        known = item.get("answer")
        if not isinstance(known, Mapping):
            raise ItemError("a golden item needs an 'answer' object", field="answer")
        plain = {k: v for k, v in item.items() if k != "answer"}
        for draft in kind.make_tasks(plain, settings, r):
            answer = kind.known_answer(draft.payload, known)
            if answer is not None:
                out.append(draft.model_copy(update={"golden_answer": answer}))
    return out


def degrade(text: str, rng: Rng, keep: float = 0.4) -> str:
    """Shuffle the sentences, then keep about ``keep`` of the words (at least one fewer than all)."""
    r = as_rng(rng)
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s]
    r.shuffle(sentences)
    words = " ".join(sentences).split()
    n = min(len(words) - 1, max(1, round(len(words) * keep)))
    return " ".join(words[:n])


def synthetic_pairwise_golden(items: Iterable[Mapping[str, Any]], n: int, settings: Any, rng: Rng
                              ) -> list[TaskDraft]:
    """``n`` pairwise golden drafts: a response (original) against its degraded copy."""
    r = as_rng(rng)
    candidates = []
    for item in items:
        model, responses = parse_item(item)
        candidates += [(model, resp) for resp in responses if len(resp.text.split()) >= MIN_WORDS]
    if n and not candidates:
        raise InputError(f"no response has {MIN_WORDS}+ words to make synthetic golden tasks from")
    out = []
    for g in range(n):
        model, resp = candidates[r.randrange(len(candidates))]
        pair_item = {"id": f"golden-{g}:{model.id}:{resp.id}", "prompt": model.prompt,
                     "responses": [{"id": "original", "text": resp.text, "source": resp.source},
                                   {"id": "degraded", "text": degrade(resp.text, r), "source": "degraded"}]}
        (draft,) = PAIRWISE.make_tasks(pair_item, settings, r)
        out.append(draft.model_copy(update={"golden_answer": PAIRWISE.known_answer(draft.payload,
                                                                                   {"best": "original"})}))
    return out


def grade(kind: TaskKind, draft: TaskDraft, judgement: Judgement) -> bool:
    """Whether a judgement on a golden draft is correct."""
    if draft.golden_answer is None:
        raise InputError(f"task {draft.key} is not golden")
    return kind.grade(draft.payload, draft.golden_answer, judgement)
