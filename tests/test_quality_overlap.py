"""The evidence adaptive overlap and trust scores read from a stage (``fit_labels``: Dawid-Skene with
golden answers pinned, and a leave-one-out posterior per answer), on hand-made judgements."""

from __future__ import annotations

import random

import pandas as pd

from campaigns.adaptive.overlap import item_confidence
from campaigns.quality.labels import agreement_counts
from decomposition.aggregate import fit_labels


def _crowd(seed: int = 0, tasks: int = 40, overlap: int | None = None) -> tuple[pd.DataFrame, dict[int, str]]:
    """Five careful workers (90% right) and two random clickers (left/right/tie) on binary items;
    every worker answers every item, or ``overlap`` workers drawn at random per item."""
    rng = random.Random(seed)
    truth = {t: rng.choice(["left", "right"]) for t in range(tasks)}
    workers = [f"good{w}" for w in range(5)] + ["spam0", "spam1"]
    rows = []
    for t, label in truth.items():
        for w in (rng.sample(workers, overlap) if overlap else workers):
            if w.startswith("spam"):
                rows.append((t, w, rng.choice(["left", "right", "tie"])))
            else:
                wrong = "right" if label == "left" else "left"
                rows.append((t, w, label if rng.random() < 0.9 else wrong))
    return pd.DataFrame(rows, columns=["task", "worker", "label"]), truth


def test_confidence_is_low_where_only_clickers_agree_and_zero_below_the_minimum():
    rows, truth = _crowd()
    rows = pd.concat([rows, pd.DataFrame([(100, "spam0", "left"), (100, "spam1", "left")],
                                         columns=rows.columns)], ignore_index=True)
    fit = fit_labels(rows)
    conf = item_confidence(fit, rows, blocked=set(), minimum=2)
    assert conf[100] < 0.8  # the raw vote share would call it settled at 1.0
    assert sorted(conf[t] for t in truth)[len(truth) // 2] > 0.9  # careful workers' items are settled
    assert item_confidence(fit, rows, blocked=set(), minimum=8)[0] == 0.0  # under the minimum: undecided
    # blocked workers' answers do not count towards the minimum
    assert item_confidence(fit, rows, blocked={"spam0", "spam1"}, minimum=7)[0] == 0.0


def test_confidence_falls_back_to_the_vote_share_without_a_fit():
    rows = pd.DataFrame([(1, "a", "left"), (1, "b", "left"), (1, "c", "right")], columns=["task", "worker", "label"])
    assert item_confidence(None, rows, blocked=set(), minimum=1) == {1: 2 / 3}


def test_golden_answers_pin_their_tasks():
    rows, truth = _crowd(2)
    wrong = {t: ("right" if lab == "left" else "left") for t, lab in list(truth.items())[:5]}
    fit = fit_labels(rows, pd.Series(wrong, dtype=object))
    assert all(fit.probas.loc[t, lab] == 1.0 for t, lab in wrong.items())


def test_agreement_leaves_the_worker_out_of_the_truth_they_are_measured_against():
    # three answers per item: with their own vote counted, a clicker decides every 2-1 split
    rows, truth = _crowd(1, tasks=300, overlap=3)
    counts = agreement_counts(fit_labels(rows), golden=set(), confident=0.8)
    share = {w: hits / n for w, (hits, n) in counts.items()}
    assert all(share[f"good{w}"] > 0.8 for w in range(5))
    assert all(share[f"spam{w}"] < 0.45 for w in range(2))  # chance is 1/3 (left, right or tie)
    assert all(n >= 50 for n in (n for _, n in counts.values()))


def test_agreement_of_a_blocked_worker_is_read_against_the_others_only():
    rows, truth = _crowd(3)
    # a worker who copies a clicker on every item agrees with the clickers, not with the careful
    echo = rows[rows["worker"] == "spam0"].assign(worker="echo")
    rows = pd.concat([rows, echo], ignore_index=True)
    with_spam = agreement_counts(fit_labels(rows), golden=set(), confident=0.8)["echo"]
    without = agreement_counts(fit_labels(rows, exclude={"spam0", "spam1"}), golden=set(), confident=0.8)["echo"]
    assert without[0] / without[1] < 0.5
    assert without[0] / without[1] <= with_spam[0] / with_spam[1]
    # golden tasks are evidence of their own and never counted as agreement
    golden = set(list(truth)[:10])
    assert agreement_counts(fit_labels(rows), golden=golden, confident=0.8)["good0"][1] <= len(truth) - 10


def test_smoothed_posterior_does_not_trust_workers_seen_once():
    rows, truth = _crowd(4)
    # two newcomers who answered one item each, and agree
    rows = pd.concat([rows, pd.DataFrame([(200, "new0", "left"), (200, "new1", "left")], columns=rows.columns)],
                     ignore_index=True)
    fit = fit_labels(rows)
    assert fit.posterior.loc[200].max() < 0.9  # two unknown workers' agreement settles little
    settled = fit.posterior.reindex(list(truth)).max(axis=1)
    assert (settled > 0.99).mean() > 0.5  # careful workers seen on 40 items still settle theirs


def test_a_fit_bounded_to_a_sample_of_tasks_reads_agreement_as_the_full_fit_does():
    rows, _ = _crowd(seed=5, tasks=1200, overlap=3)
    full = agreement_counts(fit_labels(rows), golden=set(), confident=0.8)
    sampled_fit = fit_labels(rows, max_fit_rows=len(rows) // 4)
    sampled = agreement_counts(sampled_fit, golden=set(), confident=0.8)
    assert len(sampled_fit.rows) == len(rows)  # every answer is read, not only the sample's
    assert set(sampled) == set(full)
    for w, (hits, n) in full.items():
        s_hits, s_n = sampled[w]
        assert abs(s_hits / s_n - hits / n) < 0.05 and s_n > 0.8 * n, (w, full[w], sampled[w])
    assert max(h / n for w, (h, n) in sampled.items() if w.startswith("spam")) + 0.2 < \
        min(h / n for w, (h, n) in sampled.items() if w.startswith("good"))
    assert fit_labels(rows, max_fit_rows=len(rows)).rows.equals(fit_labels(rows).rows)  # at the bound: all rows
