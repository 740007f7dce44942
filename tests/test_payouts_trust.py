import random
from pathlib import Path

import pytest

from payouts.trust import Action, TrustInputs, TrustPolicy, decide, ds_worker_accuracy, explain, score

POLICY = TrustPolicy()  # pairwise: chance 0.5
SHARED = Path(__file__).resolve().parents[1] / "../shared"


def simulated(rng, accuracy, golden, agreement_tasks=60):
    """A worker who is right with probability ``accuracy``, and the DS accuracy the aggregate
    would give them (their true accuracy plus estimation noise)."""
    k = sum(rng.random() < accuracy for _ in range(golden))
    agree = min(1.0, max(0.0, rng.gauss(accuracy, 0.05))) if agreement_tasks else None
    return TrustInputs(worker_id=f"w{rng.random():.6f}", golden_correct=k, golden_total=golden,
                       agreement=agree, agreement_tasks=agreement_tasks)


def test_random_spammers_get_blocked_with_enough_evidence():
    rng = random.Random(11)
    actions = [decide(score(simulated(rng, 0.5, 40), POLICY), POLICY) for _ in range(200)]
    assert Action.trust not in actions
    assert actions.count(Action.block) >= 180  # the rest are undecided, never trusted


def test_good_workers_are_not_blocked_and_mostly_trusted():
    rng = random.Random(12)
    actions = [decide(score(simulated(rng, 0.9, 40), POLICY), POLICY) for _ in range(200)]
    assert Action.block not in actions
    assert actions.count(Action.trust) >= 120


def test_too_little_evidence_means_no_action_even_for_the_worst_answers():
    for n in range(0, 10):  # min_evidence 10 and no agreement evidence
        s = score(TrustInputs(worker_id="w", golden_correct=0, golden_total=n), POLICY)
        assert decide(s, POLICY) is Action.none
        assert "too little evidence" in explain(s, POLICY)
    assert decide(score(TrustInputs(worker_id="w", golden_correct=0, golden_total=10), POLICY), POLICY) \
        is Action.block
    perfect = score(TrustInputs(worker_id="w", golden_correct=9, golden_total=9, screening_score=100), POLICY)
    assert decide(perfect, POLICY) is Action.none  # screening never counts as evidence for an action


def test_more_evidence_narrows_the_bounds_and_the_score_is_chance_corrected():
    small = score(TrustInputs(worker_id="w", golden_correct=8, golden_total=10), POLICY)
    big = score(TrustInputs(worker_id="w", golden_correct=80, golden_total=100), POLICY)
    assert small.lower < big.lower <= big.trust <= big.upper < small.upper
    assert abs(big.accuracy_mean - 81 / 102) < 1e-9  # Beta(1 + 80, 1 + 20)
    assert abs(big.trust - (81 / 102 - 0.5) / 0.5) < 1e-5
    guesser = score(TrustInputs(worker_id="w", golden_correct=30, golden_total=100), POLICY)
    assert guesser.trust == guesser.lower == 0.0  # below chance is clipped at 0
    three_way = TrustPolicy(chance=1 / 3)
    assert score(TrustInputs(worker_id="w", golden_correct=50, golden_total=100), three_way).trust > 0.2


def test_prior_and_agreement_weight_come_from_the_policy():
    x = TrustInputs(worker_id="w", golden_correct=5, golden_total=10, agreement=1.0, agreement_tasks=100)
    s = score(x, POLICY)
    assert s.evidence.agreement == POLICY.agreement_cap == 30  # 1.0 x 100 tasks, capped at 30
    assert (s.alpha, s.beta) == (1 + 5 + 30, 1 + 5)
    sceptic = score(x, TrustPolicy(prior_alpha=2, prior_beta=8, agreement_weight=0.1))
    assert (sceptic.alpha, sceptic.beta) == (2 + 5 + 10, 8 + 5)
    assert sceptic.trust < s.trust
    assert s.evidence.total == 40 and s.parts.golden_accuracy == 0.5


def test_speed_flag_penalises_needs_enough_items():
    base = dict(worker_id="w", golden_correct=38, golden_total=40, crowd_median_seconds_per_item=20.0)
    normal = score(TrustInputs(**base, median_seconds_per_item=18.0, timed_items=30), POLICY)
    fast = score(TrustInputs(**base, median_seconds_per_item=3.0, timed_items=30), POLICY)
    few = score(TrustInputs(**base, median_seconds_per_item=3.0, timed_items=5), POLICY)
    assert normal.flags == [] and few.flags == [] and fast.flags == ["too_fast"]
    assert fast.parts.speed_ratio == pytest.approx(0.15)
    assert fast.trust == pytest.approx(normal.trust * POLICY.flag_penalty, abs=1e-6)
    assert decide(normal, POLICY) is Action.trust
    assert decide(fast, POLICY) is not Action.trust  # a flagged worker is never trusted...
    assert decide(fast, POLICY) is not Action.block  # ...but a flag alone blocks nobody accurate
    assert "too_fast" in explain(fast, POLICY)


def test_flags_block_a_weak_worker_on_less_evidence():
    weak = dict(worker_id="w", golden_correct=17, golden_total=30)  # 57%: not yet clearly bad
    plain = score(TrustInputs(**weak), POLICY)
    biased = score(TrustInputs(**weak, left_share=0.9, pairwise_answers=40), POLICY)
    assert biased.flags == ["position_bias"]
    assert decide(plain, POLICY) is Action.none and decide(biased, POLICY) is Action.block
    not_enough = score(TrustInputs(**weak, left_share=0.9, pairwise_answers=10), POLICY)
    balanced = score(TrustInputs(**weak, left_share=0.55, pairwise_answers=400), POLICY)
    assert not_enough.flags == balanced.flags == []


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="exceeds golden_total"):
        TrustInputs(worker_id="w", golden_correct=3, golden_total=2)
    with pytest.raises(ValueError):
        TrustInputs(worker_id="w", screening_score=120)
    s = score(TrustInputs(worker_id="w", golden_correct=3, golden_total=4))
    assert set(s.model_dump()) >= {"trust", "parts", "evidence", "flags"}  # ready for WorkerScore


def test_ds_worker_accuracy_reads_the_fitted_confusion_diagonal():
    pd = pytest.importorskip("pandas")
    from crowdkit.aggregation import DawidSkene

    df = pd.DataFrame({"task": [1, 1, 1, 2, 2, 2, 3, 3, 3], "worker": ["a", "b", "c"] * 3,
                       "label": ["x", "x", "y", "y", "y", "y", "x", "x", "x"]})
    ds = DawidSkene(n_iter=10).fit(df)
    acc = ds_worker_accuracy(ds.errors_, ds.priors_)
    # a and b always agree with the aggregate; c is right on the one "y" task and one of two "x" tasks
    assert acc["a"] == pytest.approx(1.0, abs=1e-6) and acc["b"] == pytest.approx(1.0, abs=1e-6)
    expected_c = sum(ds.priors_[label] * ds.errors_.loc[("c", label), label] for label in ("x", "y"))
    assert acc["c"] == pytest.approx(expected_c) and acc["c"] < 0.9


def test_on_a_real_crowd_blocked_workers_are_worse_on_held_out_truth():
    """Duck identification (binary, 39 workers): half the truths serve as goldens, Dawid-Skene runs
    on the other half without truth, and each decision is judged on that held-out truth."""
    base = SHARED / "data/truth-inference/d_Duck_Identification"
    if not (base / "answer.csv").exists():
        pytest.skip(f"shared dataset not found at {base}")
    pd = pytest.importorskip("pandas")
    from crowdkit.aggregation import DawidSkene

    answers = pd.read_csv(base / "answer.csv").rename(columns={"question": "task", "answer": "label"})
    truth = pd.read_csv(base / "truth.csv").rename(columns={"question": "task"})
    tasks = sorted(truth.task.unique())
    random.Random(0).shuffle(tasks)
    golden = set(tasks[: len(tasks) // 2])
    merged = answers.merge(truth, on="task", how="left")
    merged["ok"] = merged.label == merged.truth
    on_golden = merged[merged.task.isin(golden)]
    rest = answers[~answers.task.isin(golden)]
    ds = DawidSkene(n_iter=100).fit(rest)
    agreement = ds_worker_accuracy(ds.errors_, ds.priors_)
    tasks_done = rest.groupby("worker").size()
    held_out = merged[~merged.task.isin(golden) & merged.truth.notna()].groupby("worker").ok.mean()

    by_action: dict[Action, list[float]] = {a: [] for a in Action}
    for worker in held_out.index:
        g = on_golden[on_golden.worker == worker]
        x = TrustInputs(worker_id=str(worker), golden_correct=int(g.ok.sum()), golden_total=len(g),
                        agreement=agreement.get(str(worker)), agreement_tasks=int(tasks_done.get(worker, 0)))
        by_action[decide(score(x, POLICY), POLICY)].append(float(held_out[worker]))
    mean = {a: sum(v) / len(v) for a, v in by_action.items() if v}
    assert by_action[Action.block] and by_action[Action.none]
    assert max(by_action[Action.block]) < 0.65  # every blocked worker is near chance on unseen truth
    assert mean[Action.block] < mean[Action.none] <= mean.get(Action.trust, 1.0)
