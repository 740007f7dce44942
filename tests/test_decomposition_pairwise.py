"""Task kinds: items -> pair designs -> widgets -> answers -> judgements; listwise; golden; pages."""

from __future__ import annotations

import random
from collections import Counter, deque

import pytest

from connectors.base import Choice, Display, PageItem
from decomposition.errors import AnswerError, InputError, ItemError
from decomposition.golden import degrade, golden_tasks, grade, synthetic_pairwise_golden
from decomposition.kinds import get_kind, to_page_item
from decomposition.pages import build_pages, page_split
from decomposition.pairwise import PairwiseSettings, pair_design

PAIRWISE = get_kind("pairwise")
LISTWISE = get_kind("listwise")


def item(k: int, item_id: str = "q1") -> dict:
    return {"id": item_id, "prompt": "Explain <b>tides</b> & waves", "responses": [
        {"id": f"m{i}", "text": f"Response number {i}. It has two sentences, this is the second one."}
        for i in range(k)]}


def connected(k: int, pairs: list[tuple[int, int]]) -> bool:
    adj: dict[int, set[int]] = {i: set() for i in range(k)}
    for a, b in pairs:
        adj[a].add(b)
        adj[b].add(a)
    seen, todo = {0}, deque([0])
    while todo:
        for nxt in adj[todo.popleft()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return len(seen) == k


# --------------------------------------------------------------------------- items
@pytest.mark.parametrize(("bad", "field"), [
    ({"prompt": "p", "responses": ["a", "b"]}, "id"),
    ({"id": "x", "prompt": "", "responses": ["a", "b"]}, "prompt"),
    ({"id": "x", "prompt": "p", "responses": ["only one"]}, "responses"),
    ({"id": "x", "prompt": "p", "responses": ["a", {"id": "b", "text": ""}]}, "responses.1.text"),
    ({"id": "x", "prompt": "p", "responses": ["a", "   "]}, "responses.1.text"),
    ({"id": "x", "prompt": "p", "responses": [{"id": "a", "text": "t"}, {"id": "a", "text": "u"}]},
     "responses.1.id"),
    ({"id": "x", "prompt": "p", "responses": ["a", {"text": "t", "colour": "red"}]}, "responses.1.colour"),
])
def test_bad_item_names_the_field(bad, field):
    with pytest.raises(ItemError) as err:
        PAIRWISE.make_tasks(bad, {}, 0)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")


def test_string_responses_get_positional_ids_and_ints_become_strings():
    drafts = PAIRWISE.make_tasks({"id": 7, "prompt": "p", "responses": ["a", "b"]}, {}, 0)
    (d,) = drafts
    assert d.item_id == "7" and d.key == "7/p0-1"
    assert {d.payload["left"]["id"], d.payload["right"]["id"]} == {"r0", "r1"}


def test_unknown_setting_is_refused():
    with pytest.raises(InputError, match="allow_ties"):
        PAIRWISE.settings({"allow_ties": True})
    with pytest.raises(InputError, match="unknown task kind 'ranking'"):
        get_kind("ranking")


# --------------------------------------------------------------------------- design
@pytest.mark.parametrize("k", [2, 3, 6])
def test_small_k_compares_every_pair(k):
    drafts = PAIRWISE.make_tasks(item(k), {}, 1)
    expected = [f"p{i}-{j}" for i in range(k) for j in range(i + 1, k)]
    assert sorted(d.key_hint for d in drafts) == sorted(expected)


@pytest.mark.parametrize(("k", "budget"), [(7, None), (12, 11), (12, 12), (20, 30), (9, 3)])
def test_large_k_sampled_design_is_connected_and_sized(k, budget):
    settings = PairwiseSettings(pairs_per_item=budget)
    for seed in range(20):
        pairs = pair_design(k, settings, seed)
        assert len(set(pairs)) == len(pairs) == max(k - 1, budget or 2 * k)
        assert all(0 <= a < b < k for a, b in pairs)
        assert connected(k, pairs), (seed, pairs)
    assert pair_design(k, settings, 1) == pair_design(k, settings, 1)
    assert len({tuple(pair_design(k, settings, s)) for s in range(20)}) > 1


def test_flip_is_seeded_balanced_and_undone_in_judgements():
    drafts = PAIRWISE.make_tasks(item(40), {"full_design_max": 40}, 3)
    again = PAIRWISE.make_tasks(item(40), {"full_design_max": 40}, 3)
    assert [d.payload for d in drafts] == [d.payload for d in again]
    flips = Counter(d.payload["flipped"] for d in drafts)
    assert 0.4 < flips[True] / len(drafts) < 0.6
    for d in drafts[:50]:
        i, j = map(int, d.key_hint[1:].split("-"))
        lo, hi = f"m{i}", f"m{j}"
        shown_left = d.payload["left"]["id"]
        assert shown_left == (hi if d.payload["flipped"] else lo)
        # a worker picks the left-hand response: the winner is whatever was shown on the left
        j_left = PAIRWISE.parse(d.payload, {"choice": "left"})
        assert (j_left.winner_id, j_left.loser_id) == (shown_left, d.payload["right"]["id"])
        (row,) = PAIRWISE.rows(d.payload, j_left)
        assert row["winner"] == shown_left and row["pair"] == f"q1|{lo}|{hi}"


# --------------------------------------------------------------------------- widgets and answers
def test_widgets_show_text_and_ask_the_right_choices():
    settings = {"allow_tie": True, "criteria": ["helpful", "harmless"]}
    (d, *_) = PAIRWISE.make_tasks(item(3), settings, 0)
    widgets = PAIRWISE.widgets(d.payload, settings)
    displays = {w.name: w.text for w in widgets if isinstance(w, Display)}
    assert displays == {"prompt": "Explain <b>tides</b> & waves", "left": d.payload["left"]["text"],
                        "right": d.payload["right"]["text"]}
    choices = {w.name: [v for v, _ in w.options] for w in widgets if isinstance(w, Choice)}
    assert choices == {"choice": ["left", "right", "tie"], "helpful": ["left", "right", "tie"],
                       "harmless": ["left", "right", "tie"]}
    page_item = to_page_item(PAIRWISE, d, "k", settings)
    assert isinstance(page_item, PageItem) and not page_item.golden
    # response ids (which may name the model) never reach the worker
    assert not any(rid in page_item.model_dump_json() for rid in ("m0", "m1", "m2"))


@pytest.mark.parametrize(("answer", "message"), [
    ({"choice": "tie"}, "choice: must be one of left, right; got 'tie'"),
    ({}, "choice: missing answer"),
    ({"choice": "LEFT"}, "choice: must be one of"),
    ({"choice": "left", "helpful": "left"}, "unexpected field(s): helpful"),
    (["left"], "an answer must be an object"),
])
def test_malformed_pairwise_answer_raises(answer, message):
    (d, *_) = PAIRWISE.make_tasks(item(2), {}, 0)
    with pytest.raises(AnswerError) as err:
        PAIRWISE.parse(d.payload, answer)
    assert message in str(err.value)


def test_criteria_are_required_and_unflipped():
    settings = {"criteria": ["honest"]}
    drafts = PAIRWISE.make_tasks(item(2), settings, 0)
    d = drafts[0]
    with pytest.raises(AnswerError, match="honest: missing"):
        PAIRWISE.parse(d.payload, {"choice": "left"})
    j = PAIRWISE.parse(d.payload, {"choice": "left", "honest": "right"})
    rows = {r["criterion"]: r["winner"] for r in PAIRWISE.rows(d.payload, j)}
    assert rows == {"overall": d.payload["left"]["id"], "honest": d.payload["right"]["id"]}
    tie = PAIRWISE.parse(d.payload, {"choice": "right", "honest": "tie"})
    assert {r["criterion"]: r["winner"] for r in PAIRWISE.rows(d.payload, tie)}["honest"] == "tie"


# --------------------------------------------------------------------------- listwise
def test_listwise_ranking_decomposes_into_implied_pairs():
    (d,) = LISTWISE.make_tasks(item(4), {}, 5)
    shown = [r["id"] for r in d.payload["shown"]]
    assert sorted(shown) == ["m0", "m1", "m2", "m3"]
    truth = ["m2", "m0", "m3", "m1"]  # best first
    answer = {f"rank_{n}": str(truth.index(rid) + 1) for n, rid in enumerate(shown)}
    j = LISTWISE.parse(d.payload, answer)
    assert j.order == truth
    rows = LISTWISE.rows(d.payload, j)
    assert len(rows) == 6
    got = {frozenset((r["left_id"], r["right_id"])): r["winner"] for r in rows}
    expected = {frozenset((a, b)): a for n, a in enumerate(truth) for b in truth[n + 1:]}
    assert got == expected
    # the same ranking given as ids or as displayed positions
    assert LISTWISE.parse(d.payload, {"ranking": truth}).order == truth
    assert LISTWISE.parse(d.payload, {"ranking": [shown.index(x) for x in truth]}).order == truth


@pytest.mark.parametrize("answer", [
    {"rank_0": "1", "rank_1": "1", "rank_2": "2", "rank_3": "3"},
    {"rank_0": "1", "rank_1": "2", "rank_2": "3"},
    {"rank_0": "1", "rank_1": "2", "rank_2": "3", "rank_3": "5"},
    {"rank_0": "a", "rank_1": "2", "rank_2": "3", "rank_3": "4"},
    {"ranking": ["m0", "m1", "m2"]},
    {"ranking": ["m0", "m1", "m2", "m2"]},
    {"ranking": [0, 1, 2, 2]},
])
def test_listwise_refuses_non_permutations(answer):
    (d,) = LISTWISE.make_tasks(item(4), {}, 5)
    with pytest.raises(AnswerError):
        LISTWISE.parse(d.payload, answer)


def test_listwise_widgets_ask_a_rank_per_response():
    (d,) = LISTWISE.make_tasks(item(3), {}, 0)
    ranks = [w for w in LISTWISE.widgets(d.payload, {}) if isinstance(w, Choice)]
    assert [w.name for w in ranks] == ["rank_0", "rank_1", "rank_2"]
    assert all([v for v, _ in w.options] == ["1", "2", "3"] for w in ranks)


# --------------------------------------------------------------------------- golden
def test_given_golden_items_become_golden_drafts_and_grade():
    gold = {**item(3, "g1"), "objective": True, "answer": {"ranking": ["m2", "m0", "m1"]}}
    drafts = golden_tasks(PAIRWISE, [gold], {}, 0)
    assert len(drafts) == 3 and all(d.golden_answer for d in drafts)
    for d in drafts:
        left, right = d.payload["left"]["id"], d.payload["right"]["id"]
        better = min((left, right), key=["m2", "m0", "m1"].index)
        correct = "left" if better == left else "right"
        assert d.golden_answer == {"choice": correct}
        wrong = "right" if correct == "left" else "left"
        assert grade(PAIRWISE, d, PAIRWISE.parse(d.payload, {"choice": correct}))
        assert not grade(PAIRWISE, d, PAIRWISE.parse(d.payload, {"choice": wrong}))
    # "best" decides only the pairs that include it
    only_best = golden_tasks(PAIRWISE, [{**item(3, "g2"), "objective": True, "answer": {"best": "m1"}}], {}, 0)
    assert len(only_best) == 2
    (listed,) = golden_tasks(LISTWISE, [gold], {}, 0)
    assert LISTWISE.parse(listed.payload, listed.golden_answer).order == ["m2", "m0", "m1"]
    assert to_page_item(LISTWISE, listed, "x", {}).golden
    with pytest.raises(ItemError, match="answer"):
        golden_tasks(PAIRWISE, [item(2)], {}, 0)


def test_synthetic_golden_original_must_win_against_degraded_copy():
    text = "Tides come from the moon. The sun matters too. Water bulges on both sides. Two highs a day."
    assert degrade(text, 1) != text
    short = degrade(text, 1)
    assert 0.3 * len(text.split()) <= len(short.split()) <= 0.5 * len(text.split())
    assert set(short.split()) <= set(text.split())
    items = [{"id": "a", "prompt": "Why tides?", "responses": [text, "Too short."]}]
    drafts = synthetic_pairwise_golden(items, 10, {}, 2)
    assert len(drafts) == 10 and len({d.item_id for d in drafts}) == 10
    for d in drafts:
        original = "left" if d.payload["left"]["id"] == "original" else "right"
        assert d.payload[original]["text"] == text
        assert d.golden_answer == {"choice": original}
    assert {d.payload["flipped"] for d in drafts} == {True, False}
    with pytest.raises(InputError):
        synthetic_pairwise_golden([{"id": "b", "prompt": "p", "responses": ["x", "y"]}], 1, {}, 0)


# --------------------------------------------------------------------------- pages
def test_pages_mix_golden_at_rate_and_keep_every_task_once():
    tasks = [f"t{i}" for i in range(23)]
    gold = [f"g{i}" for i in range(4)]
    pages = build_pages(tasks, gold, page_size=5, golden_rate=0.2, rng=9)
    assert page_split(5, 0.2) == (4, 1)
    assert sorted(t for p in pages for t in p if t.startswith("t")) == sorted(tasks)
    assert all(sum(t.startswith("g") for t in p) == 1 for p in pages)
    assert [len(p) for p in pages] == [5] * 5 + [4]
    assert pages == build_pages(tasks, gold, 5, 0.2, random.Random(9))
    golden_positions = Counter(i for p in pages for i, t in enumerate(p) if t.startswith("g"))
    assert len(golden_positions) > 1  # position does not give golden items away
    assert build_pages(tasks, [], 5, 0.0, 0) and page_split(10, 0.25) == (7, 3)
    with pytest.raises(InputError, match="golden"):
        build_pages(tasks, [], 5, 0.2, 0)
