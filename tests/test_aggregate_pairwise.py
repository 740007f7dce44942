"""Pairwise aggregation on simulated crowds with a known truth, plus the CSV entry point's errors.

The simulation hides a quality per response; workers judge through the real task kinds (designs,
flips, parsing), so these tests cover the path from task drafts to preference pairs.
"""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from decomposition.aggregate import aggregate_csv, aggregate_labels, aggregate_pairwise, preference_pairs
from decomposition.errors import InputError
from decomposition.kinds import get_kind

PAIRWISE = get_kind("pairwise")
LISTWISE = get_kind("listwise")


def simulate(n_prompts: int, seed: int, per_task: int = 5, good: int = 12, spam: int = 4,
             left: int = 0) -> tuple[pd.DataFrame, dict]:
    """Judgement rows from good workers (90% right), spammers (coin flips) and workers who
    always pick the left-hand response."""
    r = random.Random(seed)
    quality: dict[tuple[str, str], float] = {}
    workers = [(f"good{i}", "good") for i in range(good)] + [(f"spam{i}", "spam") for i in range(spam)]
    workers += [(f"left{i}", "left") for i in range(left)]
    rows = []
    for p in range(n_prompts):
        k = r.choice([3, 4, 5, 8])
        item = {"id": f"q{p}", "prompt": f"prompt {p}",
                "responses": [{"id": f"m{i}", "text": f"text {i}"} for i in range(k)]}
        for i in range(k):
            quality[(f"q{p}", f"m{i}")] = r.gauss(0, 1)
        for draft in PAIRWISE.make_tasks(item, {}, r):
            pl = draft.payload
            better = "left" if quality[(pl["prompt_id"], pl["left"]["id"])] > \
                quality[(pl["prompt_id"], pl["right"]["id"])] else "right"
            for worker, style in r.sample(workers, per_task):
                if style == "good":
                    choice = better if r.random() < 0.9 else ({"left": "right", "right": "left"}[better])
                elif style == "spam":
                    choice = r.choice(["left", "right"])
                else:
                    choice = "left"
                judgement = PAIRWISE.parse(pl, {"choice": choice})
                rows += [{"worker": worker, **row} for row in PAIRWISE.rows(pl, judgement)]
    return pd.DataFrame(rows), quality


def true_winner(quality: dict, pairs: pd.DataFrame) -> np.ndarray:
    return np.array([a if quality[(p, a)] > quality[(p, b)] else b
                     for p, a, b in zip(pairs["prompt"], pairs["first_id"], pairs["second_id"], strict=True)])


def mean_spearman(quality: dict, scores: pd.DataFrame) -> float:
    truth = [quality[(p, x)] for p, x in zip(scores["prompt"], scores["response_id"], strict=True)]
    s = scores.assign(truth=truth)
    return float(np.mean([spearmanr(g["score"], g["truth"])[0] for _, g in s.groupby("prompt")]))


@pytest.fixture(scope="module")
def crowd():
    return simulate(30, seed=11)


@pytest.mark.parametrize("method", ["mv", "ds"])
def test_pair_labels_recover_truth(crowd, method):
    df, quality = crowd
    result = kind_aggregate(df, method)
    pairs = result.pairs
    assert len(pairs) == df["pair"].nunique()
    accuracy = (pairs["label"].to_numpy() == true_winner(quality, pairs)).mean()
    assert accuracy > 0.85
    assert pairs["agreement"].between(0, 1).all() and pairs["confidence"].between(0, 1).all()
    # agreement is the share of a pair's judgements that match its aggregate
    row = pairs.iloc[0]
    mine = df[df["pair"] == row["pair"]]
    assert row["agreement"] == pytest.approx((mine["winner"] == row["label"]).mean())
    assert row["n"] == len(mine)


def kind_aggregate(df, method, **options):
    return PAIRWISE.aggregate(df, method=method, **options)


def test_ds_beats_or_matches_mv_with_spammers(crowd):
    df, quality = crowd
    acc = {m: (kind_aggregate(df, m).pairs.pipe(lambda p: (p["label"] == true_winner(quality, p)).mean()))
           for m in ("mv", "ds")}
    assert acc["ds"] >= acc["mv"] - 0.01


def test_bt_ranking_tracks_hidden_quality(crowd):
    df, quality = crowd
    result = kind_aggregate(df, "ds")
    scores = result.scores
    assert set(zip(scores["prompt"], scores["response_id"], strict=True)) == set(quality)
    assert mean_spearman(quality, scores) > 0.8
    sums = scores.groupby("prompt")["score"].sum()
    assert np.allclose(sums, 1.0)  # strengths normalised per prompt
    ranking = result.ranking("q0")
    best = max((rid for (p, rid) in quality if p == "q0"), key=lambda rid: quality[("q0", rid)])
    assert len(ranking) == len(set(ranking)) and best in ranking[:2]


def test_bt_blocks_give_the_same_scores_as_one_fit(crowd, monkeypatch):
    import decomposition.aggregate as agg

    df, _ = crowd
    whole = kind_aggregate(df, "mv").scores
    monkeypatch.setattr(agg, "_BT_BLOCK_NODES", 7)  # many small fits of whole prompts
    sizes = whole.groupby("prompt").size().to_numpy()
    assert agg._blocks(sizes, 7).max() >= len(sizes) // 3
    blocked = kind_aggregate(df, "mv").scores
    merged = whole.merge(blocked, on=["criterion", "prompt", "response_id"])
    assert len(merged) == len(whole)
    assert np.allclose(merged["score_x"], merged["score_y"], atol=1e-4)


def test_noisy_bt_ranks_and_reports_worker_bias_and_skill():
    df, quality = simulate(8, seed=4, per_task=4)
    result = aggregate_pairwise(df, "ds", score_method="noisy_bt")
    assert result.score_method == "noisy_bt"
    assert mean_spearman(quality, result.scores) > 0.75
    workers = result.workers
    assert set(workers["worker"]) == set(df["worker"])
    assert workers[["bias", "skill"]].stack().between(0, 1).all()


def test_preference_pairs_follow_aggregate_and_margin(crowd):
    df, quality = crowd
    result = kind_aggregate(df, "ds")
    prefs = preference_pairs(result)
    assert len(prefs) == (result.pairs["label"] != "tie").sum()
    score = result.scores.set_index(["prompt", "response_id"])["score"]
    for p in prefs[:20]:
        assert p["margin"] == pytest.approx(score[(p["prompt_id"], p["chosen_id"])]
                                            - score[(p["prompt_id"], p["rejected_id"])])
    right = np.mean([quality[(p["prompt_id"], p["chosen_id"])] > quality[(p["prompt_id"], p["rejected_id"])]
                     for p in prefs])
    assert right > 0.85
    strict = preference_pairs(result, min_agreement=0.8)
    assert 0 < len(strict) < len(prefs) and all(p["agreement"] >= 0.8 for p in strict)


def test_ties_are_reported_not_dropped():
    rows = []
    for w in ("a", "b", "c"):
        rows.append({"pair": "q|x|y", "prompt": "q", "worker": w, "left_id": "y", "right_id": "x", "winner": "tie"})
        rows.append({"pair": "q|x|z", "prompt": "q", "worker": w, "left_id": "x", "right_id": "z", "winner": "x"})
        rows.append({"pair": "q|y|z", "prompt": "q", "worker": w, "left_id": "z", "right_id": "y", "winner": "z"})
    df = pd.DataFrame(rows)
    for method in ("mv", "ds"):
        result = aggregate_pairwise(df, method)
        labels = result.pairs.set_index("pair")["label"]
        assert labels.to_dict() == {"q|x|y": "tie", "q|x|z": "x", "q|y|z": "z"}
        assert {(p["chosen_id"], p["rejected_id"]) for p in preference_pairs(result)} == {("x", "z"), ("z", "y")}
    # dropped, the tie leaves y without a win; counted half, it connects y to x
    dropped = aggregate_pairwise(df, "mv").scores.set_index("response_id")["score"]
    half = aggregate_pairwise(df, "mv", ties="half").scores.set_index("response_id")["score"]
    assert dropped["y"] == pytest.approx(0)
    assert (half > 0.01).all() and half["x"] > half["z"] > half["y"]


def test_listwise_and_pairwise_answers_pool_by_pair():
    item = {"id": "q", "prompt": "p", "responses": [{"id": i, "text": i} for i in ("a", "b", "c")]}
    truth = ["c", "a", "b"]
    rows = []
    for w in range(3):
        (draft,) = LISTWISE.make_tasks(item, {}, w)
        j = LISTWISE.parse(draft.payload, {"ranking": truth})
        rows += [{"worker": f"w{w}", **row} for row in LISTWISE.rows(draft.payload, j)]
    for d in PAIRWISE.make_tasks(item, {}, 0):
        j = PAIRWISE.parse(d.payload, {"choice": "left"})
        rows += [{"worker": "px", **row} for row in PAIRWISE.rows(d.payload, j)]
    result = LISTWISE.aggregate(pd.DataFrame(rows), method="mv")
    assert sorted(result.pairs["pair"]) == ["q|a|b", "q|a|c", "q|b|c"]
    assert (result.pairs["n"] == 4).all()
    assert result.ranking("q") == truth


def test_criteria_are_aggregated_separately():
    item = {"id": "q", "prompt": "p", "responses": ["one", "two"]}
    settings = {"criteria": ["harmless"]}
    (d,) = PAIRWISE.make_tasks(item, settings, 0)
    rows = []
    for w in range(3):
        j = PAIRWISE.parse(d.payload, {"choice": "left", "harmless": "right"})
        rows += [{"worker": f"w{w}", **row} for row in PAIRWISE.rows(d.payload, j)]
    result = aggregate_pairwise(pd.DataFrame(rows), "mv")
    labels = result.pairs.set_index("criterion")["label"]
    assert labels["overall"] == d.payload["left"]["id"] and labels["harmless"] == d.payload["right"]["id"]
    (harmless,) = preference_pairs(result, criterion="harmless")
    assert harmless["chosen_id"] == d.payload["right"]["id"]


def test_bad_pairwise_input_is_refused():
    ok = {"pair": "q|x|y", "prompt": "q", "worker": "a", "left_id": "x", "right_id": "y", "winner": "x"}
    with pytest.raises(InputError, match="winner 'z'"):
        aggregate_pairwise(pd.DataFrame([{**ok, "winner": "z"}]))
    with pytest.raises(InputError, match="lacks column"):
        aggregate_pairwise(pd.DataFrame([{k: v for k, v in ok.items() if k != "prompt"}]))
    with pytest.raises(InputError, match="unknown method"):
        aggregate_pairwise(pd.DataFrame([ok]), method="bt")


# --------------------------------------------------------------------------- labels and CSV
def test_aggregate_labels_drops_duplicate_votes_and_reports_shares():
    df = pd.DataFrame({"task": ["t"] * 4 + ["u"] * 2, "worker": ["a", "a", "b", "c", "a", "b"],
                       "label": ["x", "y", "y", "y", "x", "x"]})
    result = aggregate_labels(df, "mv").set_index("task")
    # a's second vote on t is dropped (first kept): x, y, y -> y with 2/3
    assert result.loc["t", "label"] == "y" and result.loc["t", "confidence"] == pytest.approx(2 / 3)
    assert result.loc["u", "label"] == "x" and result.loc["u", "confidence"] == pytest.approx(1.0)


def test_aggregate_csv_errors_are_clear(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        aggregate_csv(tmp_path / "missing.csv")
    f = tmp_path / "answers.csv"
    f.write_text("task,worker,answer\nt1,w1,a\n")
    with pytest.raises(InputError, match=r"lacks column\(s\) label \(has: task, worker, answer\)"):
        aggregate_csv(f)
    with pytest.raises(InputError, match="unknown method 'zz'"):
        aggregate_csv(f, "zz")
    f.write_text("task,worker,label\nt1,w1,a\nt1,,b\n")
    with pytest.raises(InputError, match="line 3"):
        aggregate_csv(f)
    f.write_text("")
    with pytest.raises(InputError, match="not a readable CSV"):
        aggregate_csv(f)
    assert issubclass(InputError, ValueError)


def test_aggregate_csv_keeps_ids_as_text(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("item,who,tag\n007,w1,1\n007,w2,1\n007,w3,0\n010,w1,0\n")
    out = tmp_path / "out.csv"
    result = aggregate_csv(f, "ds", task_column="item", worker_column="who", label_column="tag", out=out)
    assert sorted(result["item"]) == ["007", "010"]
    assert out.read_text().splitlines()[0] == "item,tag,confidence"


def test_known_golden_pairs_teach_dawid_skene_whom_to_believe_and_stay_out_of_the_result():
    # two workers who disagree on every real pair: only the golden pairs say which one is right
    rows = []
    for p in range(30):
        first, second = f"a{p}", f"b{p}"  # the truth: the first id always wins
        for worker, winner in (("honest", first), ("contrary", second)):
            rows.append({"pair": f"q{p}|{first}|{second}", "prompt": f"q{p}", "worker": worker,
                         "left_id": first, "right_id": second, "winner": winner})
    known = {}
    for g in range(10):
        key = f"g{g}|original|degraded"
        known[key] = "original"
        for worker, winner in (("honest", "original"), ("contrary", "degraded")):
            rows.append({"pair": key, "prompt": f"g{g}", "worker": worker, "left_id": "degraded",
                         "right_id": "original", "winner": winner})
    df = pd.DataFrame(rows)
    pinned = aggregate_pairwise(df, "ds", known=known)
    assert len(pinned.pairs) == 30 and not pinned.pairs["pair"].isin(list(known)).any()
    assert not pinned.scores["prompt"].str.startswith("g").any()
    assert (pinned.pairs["label"] == pinned.pairs["first_id"]).all()
    # flip the golden answers and Dawid-Skene believes the other worker instead
    flipped = aggregate_pairwise(df, "ds", known={k: "degraded" for k in known})
    assert (flipped.pairs["label"] == flipped.pairs["second_id"]).all()
