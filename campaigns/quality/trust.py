"""How much each worker of a campaign is trusted: the evidence in the store, scored with
``payouts.trust`` (``quality.actions`` carries out what the policy decides).

Evidence per worker (see ``payouts.trust`` for how it is combined):
- golden answers on every campaign of the same marketplace (history: a fact about the worker
  learnt in one campaign still holds in the next);
- agreement: on the campaign's non-golden tasks where the *other* workers' Dawid-Skene posterior
  is at least ``AGREEMENT_CONFIDENCE`` (leave-one-out, ``campaigns.quality.labels``), the share of the
  worker's labels that match it. Not DS's fitted per-worker confusion diagonal (with a few tasks
  it overfits, e.g. to 0.002 for an honest 70% worker), and not the match with an aggregate that
  includes the worker's own vote (at 3 answers a random clicker decides every 2-1 split, which
  measured spammers at 0.54 where chance is 0.33);
- speed: median seconds per item against the crowd's median (accepted_at .. submitted_at);
- position bias: the share of "left" among pairwise choices;
- the screening score (``Worker.screening_score``, read from the marketplace by ``pools``).
"""


from __future__ import annotations

import statistics
from collections import defaultdict

from sqlalchemy import case
from sqlmodel import func, select

from campaigns.quality.labels import agreement_counts, stage_fit
from campaigns.quality.pools import blocked_workers
from campaigns.spec.stored import campaign_spec
from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, Judgement, Page, Stage, Task, Worker
from connectors.base import Choice
from decomposition.kinds import get_kind
from payouts.trust import TrustInputs, TrustPolicy

AGREEMENT_CONFIDENCE = 0.8  # the others' posterior from which their label counts as nearly known


def chance_for(store: Store, campaign: Campaign) -> float:
    """Accuracy of guessing: 1 / the options of the main choice of the campaign's first task."""
    with store.session() as s:
        row = s.exec(select(Task, Stage).join(Stage, Stage.id == Task.stage_id)
                     .where(Stage.campaign_id == campaign.id).order_by(Stage.id, Task.id).limit(1)).first()
    if row is None:
        return 0.5
    task, stage = row
    choices = [w for w in get_kind(stage.kind).widgets(task.payload, stage.settings or {}) if isinstance(w, Choice)]
    return 1 / len(choices[0].options) if choices and len(choices[0].options) > 1 else 0.5


def policy_for(campaign: Campaign, chance: float = 0.5) -> TrustPolicy:
    review = campaign_spec(campaign).review
    alpha, beta = review.trust_prior
    return TrustPolicy(prior_alpha=alpha, prior_beta=beta, chance=chance, min_evidence=review.min_evidence,
                       block_below=review.block_below_trust if review.block_below_trust is not None else 0.0,
                       trust_above=review.trusted_above if review.trusted_above is not None else 1.0)


def agreement(store: Store, campaign: Campaign, blocked: set[str]) -> dict[str, tuple[float, int]]:
    """Per worker, the share of their labels matching what the other workers say, and on how many
    tasks, over every stage with categorical answers (``campaigns.quality.labels``)."""
    with store.session() as s:
        stages = s.exec(select(Stage).where(Stage.campaign_id == campaign.id).order_by(Stage.id)).all()
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for stage in stages:
        fit, _, golden = stage_fit(store, stage, blocked)
        if fit is None:
            continue
        for w, (hits, n) in agreement_counts(fit, golden, AGREEMENT_CONFIDENCE).items():
            totals[w][0] += hits
            totals[w][1] += n
    return {w: (hits / n, n) for w, (hits, n) in totals.items() if n}


def worker_inputs(store: Store, campaign: Campaign) -> dict[str, TrustInputs]:
    """Every signal per worker who answered in this campaign."""
    with store.session() as s:
        in_campaign = select(Stage.id).where(Stage.campaign_id == campaign.id)
        judged = s.exec(select(Judgement.worker_id, Judgement.value)
                        .join(Task, Task.id == Judgement.task_id)
                        .where(Judgement.stage_id.in_(in_campaign), Judgement.valid, Task.golden.is_(False))).all()
        workers = set(s.exec(select(Judgement.worker_id).where(Judgement.stage_id.in_(in_campaign))
                             .distinct()).all())
        golden = {w: (int(c or 0), n) for w, n, c in s.exec(
            select(Judgement.worker_id, func.count(), func.sum(case((Judgement.golden_correct, 1), else_=0)))
            .join(Stage, Stage.id == Judgement.stage_id).join(Campaign, Campaign.id == Stage.campaign_id)
            .where(Campaign.provider == campaign.provider, Judgement.golden_correct.is_not(None),
                   Judgement.worker_id.in_(list(workers)))
            .group_by(Judgement.worker_id)).all()}
        timed = s.exec(select(Assignment.worker_id, Assignment.accepted_at, Assignment.submitted_at, Page.task_keys)
                       .join(Page, Page.id == Assignment.page_id)
                       .where(Assignment.stage_id.in_(in_campaign), Assignment.accepted_at.is_not(None),
                              Assignment.submitted_at.is_not(None))).all()
        blocked = blocked_workers(s, campaign.provider)
        screening = dict(s.exec(select(Worker.worker_id, Worker.screening_score).where(
            Worker.provider == campaign.provider, Worker.screening_score.is_not(None))).all())

    per_item: dict[str, list[float]] = defaultdict(list)
    items: dict[str, int] = defaultdict(int)
    for w, accepted, submitted, keys in timed:
        n = max(1, len(keys or []))
        per_item[w].append((submitted - accepted).total_seconds() / n)
        items[w] += n
    crowd_median = statistics.median(x for xs in per_item.values() for x in xs) if per_item else None
    sides: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for w, v in judged:
        if v and v.get("choice") in ("left", "right") and "left_id" in v:
            sides[w][0] += v["choice"] == "left"
            sides[w][1] += 1
    agreed = agreement(store, campaign, blocked)

    out = {}
    for w in workers:
        correct, total = golden.get(w, (0, 0))
        acc, n_tasks = agreed.get(w, (None, 0))
        left, n_pairs = sides.get(w, (0, 0))
        out[w] = TrustInputs(
            worker_id=w, golden_correct=correct, golden_total=total, agreement=acc, agreement_tasks=n_tasks,
            screening_score=screening.get(w),
            median_seconds_per_item=statistics.median(per_item[w]) if per_item.get(w) else None,
            crowd_median_seconds_per_item=crowd_median if crowd_median else None, timed_items=items.get(w, 0),
            left_share=left / n_pairs if n_pairs else None, pairwise_answers=n_pairs)
    return out
