"""Pairwise comparison: which of two responses to a prompt is better.

Items are ``{"id", "prompt", "responses": [...]}`` with K >= 2 responses, each a string or
``{"id"?, "text", "source"?}``. Each item becomes one task per compared pair: every pair for
small K (``full_design_max``), otherwise a sampled design that is always connected (a random
Hamiltonian path, closed into a cycle when the budget allows, plus random extra pairs), so
Bradley-Terry can place every response on one scale. Left/right is randomised per pair and
remembered in the payload; judgements are reported un-flipped, in response ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.base import Choice, Display, Widget
from decomposition.errors import AnswerError, ItemError, first_error
from decomposition.kinds import Judgement, Rng, TaskDraft, TaskKind, as_rng

Criterion = Literal["helpful", "harmless", "honest"]
Side = Literal["left", "right", "tie"]
TIE = "tie"

CRITERION_QUESTIONS: dict[str, str] = {
    "helpful": "Which response is more helpful?",
    "harmless": "Which response is more harmless?",
    "honest": "Which response is more honest?",
}


class PairwiseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allow_tie: bool = False
    criteria: list[Criterion] = Field(default_factory=list)  # extra per-criterion questions
    full_design_max: int = Field(6, ge=2)  # all K(K-1)/2 pairs up to this K
    pairs_per_item: int | None = Field(None, ge=1)  # sampled design size; default 2K, at least K-1
    question: str = "Which response is better?"


# --------------------------------------------------------------------------- items
class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    text: str = Field(min_length=1)
    source: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _number_id(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


class ComparisonItem(BaseModel):
    """A prompt with K >= 2 responses; shared by pairwise and listwise."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    responses: list[Response | str] = Field(min_length=2)

    @field_validator("id", mode="before")
    @classmethod
    def _number_id(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    def normalised(self) -> list[Response]:
        """Responses as models with ids: a missing id becomes ``r{index}``."""
        out = [Response(text=r) if isinstance(r, str) else r for r in self.responses]
        out = [r if r.id is not None else r.model_copy(update={"id": f"r{i}"}) for i, r in enumerate(out)]
        seen: set[str] = set()
        for i, r in enumerate(out):
            if not r.text.strip():
                raise ItemError("response text is blank", field=f"responses.{i}.text")
            if r.id in seen or r.id == TIE:
                raise ItemError(f"duplicate or reserved response id {r.id!r}", field=f"responses.{i}.id")
            seen.add(r.id)
        return out


def parse_item(item: Mapping[str, Any]) -> tuple[ComparisonItem, list[Response]]:
    """Validate an input item; ``ItemError`` names the bad field (e.g. ``responses.1.text``)."""
    if not isinstance(item, Mapping):
        raise ItemError(f"an item must be an object, got {type(item).__name__}")
    try:
        model = ComparisonItem.model_validate(item)
    except ValidationError as err:
        field, msg = first_error(err)
        if field.startswith("responses.") and field.endswith((".str", ".Response")):
            field = field.rsplit(".", 1)[0]  # drop pydantic's union-branch suffix
        field = field.replace(".Response.", ".")
        raise ItemError(msg, field=field) from None
    return model, model.normalised()


# --------------------------------------------------------------------------- design
def pair_design(k: int, settings: PairwiseSettings, rng: Rng) -> list[tuple[int, int]]:
    """Index pairs (i < j) to compare among K responses; always a connected graph."""
    every = list(combinations(range(k), 2))
    if k <= settings.full_design_max:
        return every
    r = as_rng(rng)
    budget = min(len(every), max(k - 1, settings.pairs_per_item or 2 * k))
    order = r.sample(range(k), k)
    edges = {(min(a, b), max(a, b)) for a, b in zip(order, order[1:], strict=False)}
    if budget >= k:
        edges.add((min(order[0], order[-1]), max(order[0], order[-1])))
    rest = [p for p in every if p not in edges]
    edges.update(r.sample(rest, budget - len(edges)))
    return sorted(edges)


def pair_key(prompt_id: str, a: str, b: str) -> str:
    """The same key for (a, b) and (b, a): aggregation works in response-id space."""
    lo, hi = sorted((a, b))
    return f"{prompt_id}|{lo}|{hi}"


# --------------------------------------------------------------------------- judgements
class PairJudgement(Judgement):
    prompt_id: str
    left_id: str  # as displayed
    right_id: str
    choice: Side  # as answered, in displayed positions
    criteria: dict[str, Side] = Field(default_factory=dict)

    def outcome(self, criterion: str = "overall") -> tuple[str, str] | None:
        """(winner id, loser id), or None for a tie."""
        side = self.choice if criterion == "overall" else self.criteria[criterion]
        if side == TIE:
            return None
        return (self.left_id, self.right_id) if side == "left" else (self.right_id, self.left_id)

    @property
    def winner_id(self) -> str | None:
        o = self.outcome()
        return o[0] if o else None

    @property
    def loser_id(self) -> str | None:
        o = self.outcome()
        return o[1] if o else None

    @property
    def is_tie(self) -> bool:
        return self.choice == TIE


def _side(field: str, value: Any, allowed: list[str]) -> str:
    if value is None:
        raise AnswerError("missing answer", field=field)
    if value not in allowed:
        raise AnswerError(f"must be one of {', '.join(allowed)}; got {value!r}", field=field)
    return value


class PairwiseKind(TaskKind):
    name = "pairwise"
    settings_model = PairwiseSettings

    def make_tasks(self, item: Mapping[str, Any], settings: Any, rng: Rng) -> list[TaskDraft]:
        s = self.settings(settings)
        r = as_rng(rng)
        model, responses = parse_item(item)
        drafts = []
        for i, j in pair_design(len(responses), s, r):
            flipped = r.random() < 0.5
            left, right = (responses[j], responses[i]) if flipped else (responses[i], responses[j])
            payload = {"prompt_id": model.id, "prompt": model.prompt, "left": left.model_dump(),
                       "right": right.model_dump(), "flipped": flipped, "allow_tie": s.allow_tie,
                       "criteria": list(s.criteria)}
            drafts.append(TaskDraft(item_id=model.id, key_hint=f"p{i}-{j}", payload=payload))
        return drafts

    def widgets(self, payload: Mapping[str, Any], settings: Any) -> list[Widget]:
        s = self.settings(settings)
        options = [("left", "Response A is better"), ("right", "Response B is better")]
        tie = [(TIE, "They are about the same")]
        out: list[Widget] = [
            Display(name="prompt", label="Prompt", text=payload["prompt"]),
            Display(name="left", label="Response A", text=payload["left"]["text"]),
            Display(name="right", label="Response B", text=payload["right"]["text"]),
            Choice(name="choice", label=s.question, options=options + (tie if payload["allow_tie"] else [])),
        ]
        out += [Choice(name=c, label=CRITERION_QUESTIONS[c], options=options + tie)
                for c in payload["criteria"]]
        return out

    def parse(self, payload: Mapping[str, Any], answer: Mapping[str, Any]) -> PairJudgement:
        if not isinstance(answer, Mapping):
            raise AnswerError(f"an answer must be an object of fields, got {type(answer).__name__}")
        criteria = list(payload["criteria"])
        unknown = set(answer) - {"choice", *criteria}
        if unknown:
            raise AnswerError(f"unexpected field(s): {', '.join(sorted(map(str, unknown)))}")
        choices = ["left", "right"] + ([TIE] if payload["allow_tie"] else [])
        choice = _side("choice", answer.get("choice"), choices)
        per = {c: _side(c, answer.get(c), ["left", "right", TIE]) for c in criteria}
        return PairJudgement(prompt_id=payload["prompt_id"], left_id=payload["left"]["id"],
                             right_id=payload["right"]["id"], choice=choice, criteria=per)

    def grade(self, payload: Mapping[str, Any], golden_answer: Mapping[str, Any], judgement: Any) -> bool:
        """Every field the golden answer names must match (criteria not named are not graded)."""
        got = {"choice": judgement.choice, **judgement.criteria}
        return all(got.get(field) == expected for field, expected in golden_answer.items())

    def known_answer(self, payload: Mapping[str, Any], known: Mapping[str, Any]) -> dict[str, Any] | None:
        """``known`` is ``{"ranking": [ids, best first]}`` or ``{"best": id}``."""
        left, right = payload["left"]["id"], payload["right"]["id"]
        winner = None
        if "ranking" in known:
            rank = {rid: n for n, rid in enumerate(known["ranking"])}
            if left in rank and right in rank:
                winner = left if rank[left] < rank[right] else right
        elif known.get("best") in (left, right):
            winner = known["best"]
        return None if winner is None else {"choice": "left" if winner == left else "right"}

    def rows(self, payload: Mapping[str, Any], judgement: Any) -> list[dict[str, Any]]:
        """One row per criterion ("overall" for the main choice): displayed left/right kept for
        position-bias models, ``winner`` a response id or "tie"."""
        j: PairJudgement = judgement
        key = pair_key(j.prompt_id, j.left_id, j.right_id)
        out = []
        for criterion in ["overall", *j.criteria]:
            o = j.outcome(criterion)
            out.append({"criterion": criterion, "pair": key, "prompt": j.prompt_id, "left_id": j.left_id,
                        "right_id": j.right_id, "winner": o[0] if o else TIE})
        return out

    def aggregate(self, frame: Any, method: str = "ds", **options: Any) -> Any:
        from decomposition.aggregate import aggregate_pairwise  # crowd-kit loads only when needed

        return aggregate_pairwise(frame, method=method, **options)


KIND = PairwiseKind()
