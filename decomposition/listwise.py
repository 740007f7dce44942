"""Listwise ranking: a worker ranks all K responses to a prompt at once.

One task per item; the responses are shown in a seeded random order and the worker gives each a
rank 1..K (one Choice per response). A ranking decomposes into the K(K-1)/2 pairwise judgements
it implies, which are aggregated exactly like pairwise answers (same pair keys, so pairwise and
listwise answers on the same prompt pool together).
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from connectors.base import Choice, Display, Widget
from decomposition.errors import AnswerError, ItemError
from decomposition.kinds import Judgement, Rng, TaskDraft, TaskKind, as_rng
from decomposition.pairwise import pair_key, parse_item


class ListwiseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_responses: int = Field(10, ge=2)  # longer lists are too much for one worker; use pairwise
    question: str = "Rank the responses from best (1) to worst"


class RankJudgement(Judgement):
    prompt_id: str
    shown: list[str]  # response ids in displayed order
    order: list[str]  # response ids, best first


class ListwiseKind(TaskKind):
    name = "listwise"
    settings_model = ListwiseSettings

    def make_tasks(self, item: Mapping[str, Any], settings: Any, rng: Rng) -> list[TaskDraft]:
        s = self.settings(settings)
        model, responses = parse_item(item)
        if len(responses) > s.max_responses:
            raise ItemError(f"{len(responses)} responses; listwise takes at most {s.max_responses}",
                            field="responses")
        shown = as_rng(rng).sample(responses, len(responses))
        payload = {"prompt_id": model.id, "prompt": model.prompt, "shown": [r.model_dump() for r in shown]}
        return [TaskDraft(item_id=model.id, key_hint="rank", payload=payload)]

    def widgets(self, payload: Mapping[str, Any], settings: Any) -> list[Widget]:
        s = self.settings(settings)
        k = len(payload["shown"])
        ranks = [(str(r), str(r)) for r in range(1, k + 1)]
        out: list[Widget] = [Display(name="prompt", label="Prompt", text=payload["prompt"])]
        for n, resp in enumerate(payload["shown"]):
            out.append(Display(name=f"response_{n}", label=f"Response {n + 1}", text=resp["text"]))
            out.append(Choice(name=f"rank_{n}", label=f"{s.question} ({k}): rank of response {n + 1}",
                              options=ranks))
        return out

    def parse(self, payload: Mapping[str, Any], answer: Mapping[str, Any]) -> RankJudgement:
        """Accepts the form's ``rank_{n}`` fields (1..K, a permutation), or ``ranking``: a list of
        response ids (strings) or displayed 0-based positions (ints), best first."""
        if not isinstance(answer, Mapping):
            raise AnswerError(f"an answer must be an object of fields, got {type(answer).__name__}")
        shown = [r["id"] for r in payload["shown"]]
        k = len(shown)
        if "ranking" in answer:
            order = self._from_ranking(answer, shown)
        else:
            fields = [f"rank_{n}" for n in range(k)]
            unknown = set(answer) - set(fields)
            if unknown:
                raise AnswerError(f"unexpected field(s): {', '.join(sorted(map(str, unknown)))}")
            ranks = []
            for f in fields:
                v = answer.get(f)
                if v is None:
                    raise AnswerError("missing rank", field=f)
                try:
                    ranks.append(int(v))
                except (TypeError, ValueError):
                    raise AnswerError(f"rank must be a number 1..{k}; got {v!r}", field=f) from None
            if sorted(ranks) != list(range(1, k + 1)):
                raise AnswerError(f"ranks must be a permutation of 1..{k}; got {ranks}")
            order = [rid for _, rid in sorted(zip(ranks, shown, strict=True))]
        return RankJudgement(prompt_id=payload["prompt_id"], shown=shown, order=order)

    @staticmethod
    def _from_ranking(answer: Mapping[str, Any], shown: list[str]) -> list[str]:
        ranking = answer["ranking"]
        if len(answer) != 1:
            raise AnswerError("'ranking' cannot be combined with other fields")
        if not isinstance(ranking, list):
            raise AnswerError("must be a list", field="ranking")
        if all(isinstance(x, int) and not isinstance(x, bool) for x in ranking):
            if sorted(ranking) != list(range(len(shown))):
                raise AnswerError(f"positions must be a permutation of 0..{len(shown) - 1}", field="ranking")
            return [shown[x] for x in ranking]
        if sorted(map(str, ranking)) != sorted(shown) or not all(isinstance(x, str) for x in ranking):
            raise AnswerError(f"must list each response id once: {', '.join(shown)}", field="ranking")
        return list(ranking)

    def grade(self, payload: Mapping[str, Any], golden_answer: Mapping[str, Any], judgement: Any) -> bool:
        return self.parse(payload, golden_answer).order == judgement.order

    def known_answer(self, payload: Mapping[str, Any], known: Mapping[str, Any]) -> dict[str, Any] | None:
        """``known`` is ``{"ranking": [ids, best first]}`` covering every response."""
        ranking = list(known.get("ranking") or [])
        shown = [r["id"] for r in payload["shown"]]
        if sorted(ranking) != sorted(shown):
            return None
        return {f"rank_{n}": str(ranking.index(rid) + 1) for n, rid in enumerate(shown)}

    def rows(self, payload: Mapping[str, Any], judgement: Any) -> list[dict[str, Any]]:
        """The K(K-1)/2 implied pairs; the earlier-shown response is ``left``."""
        j: RankJudgement = judgement
        rank = {rid: n for n, rid in enumerate(j.order)}
        return [{"criterion": "overall", "pair": pair_key(j.prompt_id, a, b), "prompt": j.prompt_id,
                 "left_id": a, "right_id": b, "winner": a if rank[a] < rank[b] else b}
                for a, b in combinations(j.shown, 2)]

    def aggregate(self, frame: Any, method: str = "ds", **options: Any) -> Any:
        from decomposition.aggregate import aggregate_pairwise

        return aggregate_pairwise(frame, method=method, **options)


KIND = ListwiseKind()
