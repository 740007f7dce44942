"""Adaptive overlap's item confidence and the agreement signal, on hand-made judgements."""

from __future__ import annotations

import random

from campaigns.overlap import _confidence
from campaigns.quality import _agreement


def _crowd(seed: int = 0) -> tuple[list[tuple[int, str, str]], dict[int, str]]:
    """Five careful workers (90% right) and two random clickers on 40 binary items."""
    rng = random.Random(seed)
    truth = {t: rng.choice(["left", "right"]) for t in range(40)}
    rows = []
    for t, label in truth.items():
        for w in range(5):
            wrong = "right" if label == "left" else "left"
            rows.append((t, f"good{w}", label if rng.random() < 0.9 else wrong))
        for w in range(2):
            rows.append((t, f"spam{w}", rng.choice(["left", "right"])))
    return rows, truth


def test_confidence_is_low_where_only_clickers_agree_and_zero_below_the_minimum():
    rows, truth = _crowd()
    rows += [(100, "spam0", "left"), (100, "spam1", "left")]  # unanimous, but only the clickers
    conf = _confidence(rows, minimum=2)
    assert conf[100] < 0.8  # the raw vote share would call it settled at 1.0
    assert sorted(conf[t] for t in truth)[len(truth) // 2] > 0.9  # careful workers' items are settled
    assert _confidence(rows, minimum=8)[0] == 0.0  # fewer answers than the minimum: undecided


def test_confidence_falls_back_to_the_vote_share_without_enough_workers():
    rows = [(1, "a", "left"), (1, "b", "left"), (1, "b", "right")]
    assert _confidence(rows, minimum=1) == {1: 2 / 3}


def test_agreement_is_the_share_matching_the_aggregate_of_unblocked_workers():
    rows, truth = _crowd(1)
    judged = [(w, t, {"choice": lab}) for t, w, lab in rows]
    agreement = _agreement(judged, blocked=set())
    assert all(agreement[f"good{w}"][0] > 0.8 for w in range(5))
    assert all(0.25 < agreement[f"spam{w}"][0] < 0.75 for w in range(2))
    assert agreement["good0"][1] == len(truth)
    # a worker whose answers are the clickers' on every item: only leaving the clickers out of
    # the aggregate shows that this worker agrees with them and not with the careful ones
    judged += [("echo", t, {"choice": lab}) for t, w, lab in rows if w == "spam0"]
    with_spam = _agreement(judged, blocked=set())["echo"][0]
    without = _agreement(judged, blocked={"spam0", "spam1"})["echo"][0]
    assert without <= with_spam
    assert without < 0.75
