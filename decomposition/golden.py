"""Golden tasks: tasks with a known answer, mixed into pages to measure worker accuracy.

Three sources:
- golden items given in the spec (an item plus its known ``answer``). A preference (pairwise or
  listwise) is a matter of taste, so such an item must say ``"objective": true``: grading workers
  against a subjective answer would block honest workers who disagree.
- synthetic pairwise golden: a response against a degraded copy of itself (``degrade``: truncated,
  sentences shuffled, or facts swapped), where the original must win;
- weaker-source pairwise golden: within one prompt, a response from a source named as weaker
  against one from another source, which must win. Both texts are real responses, so these
  tasks read exactly like the real ones.
Synthetic and weaker-source golden are objective by construction; both are cheap to make.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from decomposition.degrade import degrade
from decomposition.errors import InputError, ItemError
from decomposition.kinds import Judgement, Rng, TaskDraft, TaskKind, as_rng
from decomposition.pairwise import KIND as PAIRWISE
from decomposition.pairwise import ComparisonItem, Response, parse_item

MIN_WORDS = 6  # shorter responses make degraded copies that are too easy to confuse
PREFERENCE_KINDS = frozenset({"pairwise", "listwise"})
MADE_GOLDEN_KINDS = frozenset({"pairwise"})  # kinds whose golden tasks can be made from the items themselves
GOLDEN_KEYS = ("answer", "objective")  # what a golden item adds to a plain item


def golden_count(n_items: int) -> int:
    """Synthetic (and weaker-source) golden tasks for a campaign of ``n_items`` items: a fifth,
    at least 5, so a worker rarely sees the same golden task twice."""
    return max(5, n_items // 5)


def check_golden_item(kind: TaskKind, item: Mapping[str, Any]) -> None:
    """Refuse a golden item without an ``answer`` object, or a preference not marked objective."""
    if not isinstance(item.get("answer"), Mapping):
        raise ItemError("a golden item needs an 'answer' object", field="answer")
    objective = item.get("objective", False)
    if not isinstance(objective, bool):
        raise ItemError("must be true or false", field="objective")
    if kind.name in PREFERENCE_KINDS and not objective:
        raise ItemError(f"golden item {item.get('id')!r} is a {kind.name} preference, subjective unless marked: "
                        'add "objective": true if its answer is a matter of fact', field="objective")


def golden_tasks(kind: TaskKind, items: Iterable[Mapping[str, Any]], settings: Any, rng: Rng
                 ) -> list[TaskDraft]:
    """Golden drafts from spec items that carry ``answer`` (for pairwise/listwise:
    ``{"ranking": [ids, best first]}``; pairwise also ``{"best": id}``). Tasks the known answer
    does not decide (e.g. two responses both outside a partial ranking) are left out."""
    r = as_rng(rng)
    out = []
    for item in items:
        check_golden_item(kind, item)
        plain = {k: v for k, v in item.items() if k not in GOLDEN_KEYS}
        for draft in kind.make_tasks(plain, settings, r):
            answer = kind.known_answer(draft.payload, item["answer"])
            if answer is not None:
                out.append(draft.model_copy(update={"golden_answer": answer}))
    return out


def synthetic_pairwise_golden(items: Iterable[Mapping[str, Any]], n: int, settings: Any, rng: Rng,
                              modes: Sequence[str] | None = None) -> list[TaskDraft]:
    """``n`` pairwise golden drafts: a response (original) against its degraded copy, each copy
    made with one of ``modes`` (drawn per task), or the original recipe when ``modes`` is None."""
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
        mode = r.choice(list(modes)) if modes else None
        copy = Response(id="degraded", text=degrade(resp.text, r, mode=mode),
                        source="degraded" if mode is None else f"degraded:{mode}")
        original = Response(id="original", text=resp.text, source=resp.source)
        out.append(_pair(f"golden-{g}:{model.id}:{resp.id}", model, original, copy, settings, r))
    return out


def weaker_source_pairs(items: Iterable[Mapping[str, Any]], source: str
                        ) -> list[tuple[ComparisonItem, Response, Response]]:
    """(prompt, stronger, weaker) for every response from ``source`` and every response of the same
    prompt from another named source (an unnamed source might be the weaker one itself)."""
    out = []
    for item in items:
        model, responses = parse_item(item)
        weak = [x for x in responses if x.source == source]
        out += [(model, s, w) for w in weak for s in responses if s.source not in (None, source)]
    return out


def weaker_source_golden(items: Iterable[Mapping[str, Any]], source: str, n: int, settings: Any, rng: Rng
                         ) -> list[TaskDraft]:
    """Up to ``n`` pairwise golden drafts, distinct pairs drawn from ``weaker_source_pairs``: the
    response not from ``source`` must win."""
    r = as_rng(rng)
    pairs = weaker_source_pairs(items, source)
    if n and not pairs:
        raise InputError(f"no prompt has a response from source {source!r} and one from another source",
                         field="weaker_source")
    return [_pair(f"golden-weaker-{g}:{model.id}", model, strong, weak, settings, r)
            for g, (model, strong, weak) in enumerate(r.sample(pairs, min(n, len(pairs))))]


def response_sources(items: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every named source in ``items``, for an error message that helps fix a misspelt one."""
    return sorted({x.source for item in items for x in parse_item(item)[1] if x.source is not None})


def grade(kind: TaskKind, draft: TaskDraft, judgement: Judgement) -> bool:
    """Whether a judgement on a golden draft is correct."""
    if draft.golden_answer is None:
        raise InputError(f"task {draft.key} is not golden")
    return kind.grade(draft.payload, draft.golden_answer, judgement)


def _pair(item_id: str, model: ComparisonItem, better: Response, worse: Response, settings: Any,
          r: Rng) -> TaskDraft:
    """One pairwise golden draft in which ``better`` must win (its side is randomised like any pair)."""
    pair_item = {"id": item_id, "prompt": model.prompt,
                 "responses": [better.model_dump(), worse.model_dump()]}
    (draft,) = PAIRWISE.make_tasks(pair_item, settings, r)
    return draft.model_copy(update={"golden_answer": PAIRWISE.known_answer(draft.payload, {"best": better.id})})


def made_golden(kind: str, items: list[Mapping[str, Any]], *, synthetic: bool | list | None,
                weaker_source: str | None, settings: Any, rng: Rng) -> list[TaskDraft]:
    """Golden drafts made from the campaign's own items (``golden.synthetic``,
    ``golden.weaker_source``); none for a kind outside ``MADE_GOLDEN_KINDS``. A synthetic golden
    the items cannot give raises ``InputError``."""
    if kind not in MADE_GOLDEN_KINDS:
        return []
    out: list[TaskDraft] = []
    if synthetic:
        try:
            out += synthetic_pairwise_golden(items, golden_count(len(items)), settings, rng,
                                             modes=None if synthetic is True else synthetic)
        except InputError as exc:
            raise InputError(str(exc), field="golden.synthetic") from None
    if weaker_source is not None:
        out += weaker_source_golden(items, weaker_source, golden_count(len(items)), settings, rng)
    return out
