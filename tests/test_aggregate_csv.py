"""``aggregate_csv`` reads cells as the text written and gives crowd-kit's own answer.

Its reader and its repeat filter are faster than ``read_csv(dtype=str)`` and ``drop_duplicates``;
these tests hold them to the same result as those, and the aggregate to crowd-kit's fit on them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from crowdkit.aggregation import GLAD, DawidSkene, MajorityVote

from decomposition.aggregate import _first_answers, _read_text_columns, aggregate_csv, aggregate_labels

MODELS = {"mv": MajorityVote, "ds": lambda: DawidSkene(n_iter=100), "glad": GLAD}


def plain_read(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_cells_stay_the_text_written_whatever_pandas_would_infer(tmp_path):
    f = tmp_path / "a.csv"
    # a numeric-looking id column, a boolean label column, NA-like and quoted cells, a repeated header name
    f.write_text('task,worker,label,task,extra\n007,NA,True,x,1\n010,"n,a",False,y,2\n1e3,null,True,z,3\n')
    got = _read_text_columns(f, ["task", "worker", "label", "task.1"])
    want = plain_read(f)[["task", "worker", "label", "task.1"]]
    assert got.astype(object).to_dict("list") == want.astype(object).to_dict("list")
    assert got["task"].tolist() == ["007", "010", "1e3"] and got["label"].tolist() == ["True", "False", "True"]


def test_a_column_mixed_across_pandas_read_chunks_stays_text(tmp_path):
    # the C reader infers types per chunk of 2**18 rows: "007" in the first chunk would become 7
    f = tmp_path / "mixed.csv"
    n = 2**18 + 10
    task = np.array(["007"] * n, dtype=object)
    task[-1] = "x"
    pd.DataFrame({"task": task, "worker": "w", "label": "1"}).to_csv(f, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas' DtypeWarning would reach the user's terminal
        got = _read_text_columns(f, ["task", "worker", "label"])
    assert got["task"].iloc[0] == "007" and got["task"].iloc[-1] == "x" and (got["label"] == "1").all()


def test_repeats_are_dropped_as_drop_duplicates_drops_them():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"task": rng.choice(["t1", "t2", "t3", None], 400), "worker": rng.choice(["a", "b", None], 400),
                       "label": rng.choice(["x", "y"], 400)})
    want = df.drop_duplicates(["task", "worker"], keep="first")
    got = _first_answers(df)
    assert got.index.tolist() == want.index.tolist()
    unique = want.reset_index(drop=True)
    assert _first_answers(unique) is unique  # nothing repeated: nothing copied


def answers(tasks: int = 300, seed: int = 7) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    labels = ["1", "2", "3"]  # numbers to pandas: read again as text
    truth = pd.Series(rng.choice(labels, tasks), index=[f"{t:03d}" for t in range(tasks)])
    n = tasks * 5
    rows = pd.DataFrame({"task": np.repeat(truth.index, 5), "worker": [f"w{w}" for w in rng.integers(0, 30, n)]})
    rows["label"] = np.where(rng.random(n) < 0.7, rows["task"].map(truth), rng.choice(labels, n))
    return rows, truth


# MACE is left out: crowd-kit's fit takes 7 s whatever the size (same ranks, same result on the
# four truth-inference sets, checked by hand)
@pytest.mark.parametrize("method", ["mv", "ds", "glad"])
def test_aggregate_csv_is_crowd_kits_own_fit(method, tmp_path):
    # aggregate_csv hands crowd-kit integer ranks for task and worker ids: the fit must not notice
    rows, _ = answers(60 if method == "glad" else 300)  # GLAD's fit is slow
    f = tmp_path / "answers.csv"
    rows.to_csv(f, index=False)
    data = plain_read(f).drop_duplicates(["task", "worker"]).reset_index(drop=True)
    model = MODELS[method]().fit(data)
    got = aggregate_csv(f, method).set_index("task")
    assert got.index.tolist() == model.labels_.index.tolist()
    assert got["label"].to_dict() == model.labels_.to_dict()
    assert got["confidence"].to_dict() == model.probas_.max(axis=1).to_dict()  # exactly, not approximately


def test_golden_tasks_keep_their_names_for_dawid_skene():
    rows, truth = answers()
    rows = rows.drop_duplicates(["task", "worker"]).reset_index(drop=True)
    gold = truth.iloc[:20]
    model = DawidSkene(n_iter=100).fit(rows, true_labels=gold)
    got = aggregate_labels(rows, "ds", true_labels=gold).set_index("task")
    assert got["label"].to_dict() == model.labels_.to_dict()
    assert got["confidence"].to_dict() == model.probas_.max(axis=1).to_dict()
