"""Offline model of adaptive overlap against fixed overlap, run by hand (seconds, no marketplace):
how close can *any* adaptive rule come at a given share of fixed overlap's assignments, when the
worker accuracies are known exactly (the best case) and a share of answers is wasted?

    .venv/bin/python benchmarks/overlap_model.py

The crowd is the quality benchmark's: binary items, 30 honest workers of accuracy U(0.7, 0.95).
Wasted answers (a spammer's, blocked later; a worker's second look at an item) carry nothing.
Fixed overlap asks every item ``max_n`` times; adaptive asks ``min_n`` times, then spends the rest
of its share one answer at a time on the items whose posterior is furthest below ``target``.
Figures go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import math
import random
import statistics


def posterior(answers: list[tuple[int, float]]) -> tuple[float, int]:
    """(probability of the likelier label, that label) from (label, worker accuracy) answers."""
    llr = sum((1 if v else -1) * math.log(a / (1 - a)) for v, a in answers)
    p1 = 1 / (1 + math.exp(-llr))
    return max(p1, 1 - p1), int(p1 >= 0.5)


def run(seed: int, share: float, waste_planned: float, waste_follow_up: float, target: float = 0.99,
        min_n: int = 3, max_n: int = 7, items: int = 300, per_page: int = 4) -> tuple[float, float]:
    """(fixed accuracy, adaptive accuracy) of one simulated campaign."""
    rng = random.Random(seed)
    workers = [rng.uniform(0.7, 0.95) for _ in range(30)]
    truth = [rng.randint(0, 1) for _ in range(items)]

    def ask(t: int, waste: float) -> tuple[int, float] | None:
        if rng.random() < waste:
            return None
        a = rng.choice(workers)
        return (t if rng.random() < a else 1 - t), a

    def accuracy(answers: list[list]) -> float:
        return statistics.mean(posterior(a)[1] == t for a, t in zip(answers, truth, strict=True))

    fixed = [[x for _ in range(max_n) if (x := ask(t, waste_planned))] for t in truth]
    adaptive = [[x for _ in range(min_n) if (x := ask(t, waste_planned))] for t in truth]
    asked = [min_n] * items
    slots = (int(share * items / per_page * max_n) - items // per_page * min_n) * per_page
    while slots > 0:
        open_items = sorted((posterior(a)[0] if len(a) >= min_n else 0.0, i) for i, a in enumerate(adaptive)
                            if asked[i] < max_n)
        open_items = [i for p, i in open_items if p < target][:min(slots, 10 * per_page)]
        if not open_items:
            break
        for i in open_items:
            asked[i] += 1
            slots -= 1
            if x := ask(truth[i], waste_follow_up):
                adaptive[i].append(x)
    return accuracy(fixed), accuracy(adaptive)


def main() -> None:
    print("| share of fixed 7 | wasted: planned answers | wasted: follow-up answers | fixed 7 | adaptive 3..7 |")
    print("|---|---|---|---|---|")
    for share, planned, follow_up in ((0.75, 0.17, 0.2), (0.75, 0.17, 0.1), (0.75, 0.17, 0.0), (0.71, 0.0, 0.0)):
        runs = [run(seed, share, planned, follow_up) for seed in range(40)]
        fixed, adaptive = (statistics.mean(r[k] for r in runs) for k in (0, 1))
        print(f"| {share:.0%} | {planned:.0%} | {follow_up:.0%} | {fixed:.4f} | {adaptive:.4f} |")


if __name__ == "__main__":
    main()
