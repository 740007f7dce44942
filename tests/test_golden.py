"""Golden tasks as the spec describes them: synthetic golden by degradation mode, weaker-source
golden, and the objective marker on given preference items; the spec and launch checks for them."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from campaigns.engine.launch import check_inputs
from campaigns.errors import CrowdError, SpecError
from campaigns.spec.loading import load_spec
from campaigns.stages.plan import first_stage
from decomposition.degrade import MODES, degrade, sentences
from decomposition.errors import InputError, ItemError
from decomposition.golden import golden_tasks, synthetic_pairwise_golden, weaker_source_golden
from decomposition.kinds import get_kind

PAIRWISE = get_kind("pairwise")
LISTWISE = get_kind("listwise")

TIDES = "Tides come from the moon. The sun matters too. Water bulges on both sides. Two highs a day."
NUMBERS = "The bridge opened in 1937 and spans 2737 metres. It has 2 towers and cost 35 million dollars."
NAMES = "The capital of France is Paris, while the capital of Germany is Berlin. Both are large."
NOTHING = "plain words without numbers or any names at all, just lower case text in one sentence"


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+", text)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("text", [TIDES, NUMBERS, NAMES, NOTHING, "Same words. Same words. Same words."])
def test_every_mode_makes_a_copy_that_differs(mode, text):
    for seed in range(20):
        copy = degrade(text, seed, mode=mode)
        assert copy and copy != text
        assert degrade(text, seed, mode=mode) == copy  # deterministic for a seed


def test_truncate_keeps_a_prefix_of_about_40_percent_of_the_words():
    words = TIDES.split()
    copy = degrade(TIDES, 0, mode="truncate").split()
    assert copy == words[:len(copy)] and 0.3 * len(words) <= len(copy) <= 0.5 * len(words)
    assert degrade("two words", 0, mode="truncate") == "two"
    with pytest.raises(InputError):
        degrade("one", 0, mode="truncate")


def test_shuffle_reorders_whole_sentences_or_falls_back_to_truncate():
    copies = {degrade(TIDES, seed, mode="shuffle") for seed in range(10)}
    assert len(copies) > 1
    for copy in copies:
        assert sorted(sentences(copy)) == sorted(sentences(TIDES)) and sentences(copy) != sentences(TIDES)
    assert degrade("First sentence. Second one.", 0, mode="shuffle") == "Second one. First sentence."
    assert degrade(NOTHING, 0, mode="shuffle") == degrade(NOTHING, 0, mode="truncate")  # one sentence


def test_swap_facts_changes_every_number_and_nothing_else():
    for seed in range(20):
        copy = degrade(NUMBERS, seed, mode="swap_facts")
        before, after = _numbers(NUMBERS), _numbers(copy)
        assert all(a != b and len(a) == len(b) for a, b in zip(before, after, strict=True))
        assert re.sub(r"\d+", "#", copy) == re.sub(r"\d+", "#", NUMBERS)


def test_swap_facts_without_numbers_swaps_two_names_not_sentence_starts():
    swapped = {degrade(NAMES, seed, mode="swap_facts") for seed in range(20)}
    assert "The capital of Germany is Paris, while the capital of France is Berlin. Both are large." in swapped
    for copy in swapped:
        assert copy != NAMES and Counter(re.findall(r"\w+", copy)) == Counter(re.findall(r"\w+", NAMES))
        assert copy.startswith("The ") and copy.endswith("Both are large.")
    assert degrade(NOTHING, 3, mode="swap_facts") == degrade(NOTHING, 3, mode="truncate")


def test_unknown_mode_is_refused():
    with pytest.raises(InputError, match="swap_facts"):
        degrade(TIDES, 0, mode="paraphrase")


@pytest.mark.parametrize("mode", MODES)
def test_synthetic_golden_per_mode_original_wins(mode):
    items = [{"id": "a", "prompt": "Tell me about bridges", "responses": [NUMBERS, NAMES]},
             {"id": "b", "prompt": "Why tides?", "responses": [TIDES, "Too short."]}]
    drafts = synthetic_pairwise_golden(items, 12, {}, 4, modes=[mode])
    assert len(drafts) == 12
    for d in drafts:
        sides = {d.payload[s]["id"]: s for s in ("left", "right")}
        original, degraded = d.payload[sides["original"]], d.payload[sides["degraded"]]
        assert degraded["text"] != original["text"] and degraded["source"] == f"degraded:{mode}"
        assert d.golden_answer == PAIRWISE.known_answer(d.payload, {"best": "original"})
        assert d.golden_answer == {"choice": sides["original"]}
    if mode == "swap_facts":
        changed = [d for d in drafts if NUMBERS in (d.payload["left"]["text"], d.payload["right"]["text"])]
        assert changed
        for d in changed:
            copy = next(d.payload[s]["text"] for s in ("left", "right") if d.payload[s]["id"] == "degraded")
            assert _numbers(copy) != _numbers(NUMBERS)


def test_synthetic_golden_draws_a_mode_per_task_deterministically():
    items = [{"id": "a", "prompt": "p", "responses": [TIDES, NUMBERS]}]
    drafts = synthetic_pairwise_golden(items, 30, {}, 1, modes=list(MODES))
    used = Counter(d.payload[s]["source"] for d in drafts for s in ("left", "right")
                   if d.payload[s]["id"] == "degraded")
    assert set(used) == {f"degraded:{m}" for m in MODES}
    assert drafts == synthetic_pairwise_golden(items, 30, {}, 1, modes=list(MODES))
    legacy = synthetic_pairwise_golden(items, 5, {}, 1)  # synthetic: true keeps its old recipe
    assert all("degraded" in (d.payload["left"]["source"], d.payload["right"]["source"]) for d in legacy)


def _sourced(item_id: str, *sources: str | None) -> dict:
    return {"id": item_id, "prompt": f"prompt {item_id}",
            "responses": [{"id": f"{item_id}-{n}", "text": f"answer {n} to {item_id}", "source": s}
                          for n, s in enumerate(sources)]}


def test_weaker_source_golden_expects_the_other_source_to_win():
    items = [_sourced("q1", "strong", "weak", "mid"), _sourced("q2", "weak", None), _sourced("q3", "strong", "mid")]
    drafts = weaker_source_golden(items, "weak", 10, {}, 0)
    assert len(drafts) == 2  # only q1 pairs weak with a named other source: (strong, weak), (mid, weak)
    assert len({d.key for d in drafts}) == 2
    for d in drafts:
        sides = {d.payload[s]["source"]: s for s in ("left", "right")}
        assert set(sides) in ({"strong", "weak"}, {"mid", "weak"})
        winner = next(side for source, side in sides.items() if source != "weak")
        assert d.golden_answer == {"choice": winner}
    assert len(weaker_source_golden(items, "weak", 1, {}, 0)) == 1
    with pytest.raises(InputError, match="weaker_source"):
        weaker_source_golden(items, "missing", 3, {}, 0)


def test_given_preference_golden_must_be_marked_objective():
    gold = {"id": "g1", "prompt": "2 + 2?", "responses": [{"id": "a", "text": "4"}, {"id": "b", "text": "5"}],
            "answer": {"best": "a"}}
    for kind in (PAIRWISE, LISTWISE):
        with pytest.raises(ItemError, match=r"objective: golden item 'g1' .*\"objective\": true"):
            golden_tasks(kind, [gold], {}, 0)
        with pytest.raises(ItemError, match="true or false"):
            golden_tasks(kind, [{**gold, "objective": "yes"}], {}, 0)
    (draft,) = golden_tasks(PAIRWISE, [{**gold, "objective": True}], {}, 0)
    assert draft.golden_answer == PAIRWISE.known_answer(draft.payload, {"best": "a"})
    assert "objective" not in draft.payload
    # a kind that is not a preference needs no marker
    find = {"id": "f1", "text": "Ths text has a typo.", "answer": {"spans": [{"start": 0, "end": 3}]}}
    (found,) = golden_tasks(get_kind("find"), [find], {}, 0)
    assert found.golden_answer == {"spans": [{"start": 0, "end": 3}]}


# ------------------------------------------------------------------------------ spec and launch
def _campaign(tmp_path: Path, golden: str, golden_items: list[dict] | None = None) -> Path:
    rows = [json.loads(x) for x in (Path(__file__).resolve().parents[1] / "examples/pairwise/items.jsonl")
            .read_text().splitlines()[:6]]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if golden_items is not None:
        (tmp_path / "golden.jsonl").write_text("".join(json.dumps(g) + "\n" for g in golden_items))
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: g\nkind: pairwise\nitems: items.jsonl\npage_size: 4\ngolden: {golden}\n"
                    "pricing: {reward: 0.05}\n")
    return spec


def test_spec_modes_weaker_source_and_objective_items_reach_the_plan(tmp_path):
    first = json.loads((Path(__file__).resolve().parents[1] / "examples/pairwise/items.jsonl").read_text()
                       .splitlines()[0])
    gold = {**first, "id": "g1", "objective": True, "answer": {"best": first["responses"][3]["id"]}}
    spec = load_spec(_campaign(tmp_path, "{items: golden.jsonl, synthetic: [shuffle, swap_facts], "
                                         "weaker_source: model-d, rate: 0.25}", [gold]))
    assert spec.golden.synthetic == ["shuffle", "swap_facts"]
    items = check_inputs(spec)
    plan = first_stage(spec).plan(items, random.Random(0))
    golden = [t for t in plan.tasks if t.golden_answer is not None]
    assert any(t.item_id.startswith("golden-weaker-") for t in golden) and any(t.item_id == "g1" for t in golden)
    assert any(re.match(r"golden-\d+:", t.item_id) for t in golden)
    for t in golden:
        sources = {t.payload[s]["source"]: s for s in ("left", "right")}
        if t.item_id.startswith("golden-weaker"):
            winner = next(side for source, side in sources.items() if source != "model-d")
            assert "model-d" in sources and t.golden_answer == {"choice": winner}
        elif t.item_id.startswith("golden-"):
            assert {"degraded:shuffle", "degraded:swap_facts"} & set(sources)
    assert all(sum(k in {t.key for t in golden} for k in page) >= 1 for page in plan.pages)
    assert first_stage(load_spec(_campaign(tmp_path, "{synthetic: true}"))).spec.golden.synthetic is True


@pytest.mark.parametrize(("golden", "expected"), [
    ("{synthetic: [truncate, paraphrase]}", "golden.synthetic: unknown mode 'paraphrase'; must be true, false or "
                                            "a list of modes from truncate, shuffle, swap_facts"),
    ("{synthetic: []}", "golden.synthetic: must be true, false"),
    ("{synthetic: shuffle}", "golden.synthetic: must be true, false"),
    ("{weaker_source: ''}", "golden.weaker_source: "),
])
def test_bad_golden_settings_are_one_line_with_the_field(tmp_path, golden, expected):
    with pytest.raises(SpecError) as info:
        load_spec(_campaign(tmp_path, golden))
    assert str(info.value).startswith(f"{tmp_path / 'spec.yaml'}:5: {expected}"), str(info.value)


def test_weaker_source_needs_a_prompt_that_pairs_it(tmp_path):
    spec = load_spec(_campaign(tmp_path, "{weaker_source: model-z, rate: 0.2}"))
    with pytest.raises(CrowdError, match=r"^golden\.weaker_source: .*'model-z'.*\(sources there: model-a, model-b"):
        check_inputs(spec)
    listwise = load_spec(_campaign(tmp_path, "{weaker_source: model-d}"))
    listwise.kind = "listwise"
    with pytest.raises(CrowdError, match="only pairwise"):
        check_inputs(listwise)
