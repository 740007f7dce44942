"""How much each worker of a campaign is trusted: the evidence in the store, scored with
``payouts.trust`` (``quality.actions`` carries out what the policy decides).

Evidence per worker (see ``payouts.trust`` for how it is combined):
- golden answers on every campaign of the same marketplace (history: a fact about the worker
  learnt in one campaign still holds in the next);
- agreement: on the campaign's non-golden tasks where the *other* workers' Dawid-Skene posterior
  is at least ``AGREEMENT_CONFIDENCE`` (leave-one-out, ``campaigns.quality.agreement``), the share of the
  worker's labels that match it. Not DS's fitted per-worker confusion diagonal (with a few tasks
  it overfits, e.g. to 0.002 for an honest 70% worker), and not the match with an aggregate that
  includes the worker's own vote (at 3 answers a random clicker decides every 2-1 split, which
  measured spammers at 0.54 where chance is 0.33);
- speed: median seconds per item against the crowd's median (accepted_at .. submitted_at), read
  from a histogram (``quality.tallies``);
- position bias: the share of "left" among pairwise choices;
- the screening score (``Worker.screening_score``, read from the marketplace by ``pools``).
"""


from __future__ import annotations

from collections import defaultdict

from sqlmodel import func, select

from campaigns.quality.agreement import campaign_agreement
from campaigns.quality.pools import blocked_workers
from campaigns.quality.tallies import catch_up, median
from campaigns.spec.stored import campaign_spec
from campaigns.store.database import Store
from campaigns.store.models import Campaign, Stage, Task, Worker, WorkerSpeed, WorkerTally
from connectors.base import Choice
from decomposition.kinds import get_kind
from payouts.trust import TrustInputs, TrustPolicy


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


def worker_inputs(store: Store, campaign: Campaign) -> dict[str, TrustInputs]:
    """Every signal per worker who answered in this campaign, read from the tallies (brought up to
    date first) and the stages' agreement fits (refit where due): work that grows with what is
    new, not with the campaign (``quality.tallies``, ``quality.agreement``)."""
    provider = campaign.provider
    catch_up(store, provider)
    with store.session() as s:
        mine = s.exec(select(WorkerTally).where(WorkerTally.campaign_id == campaign.id)
                      .order_by(WorkerTally.worker_id)).all()
        golden = {w: (int(c or 0), int(n or 0)) for w, c, n in s.exec(
            select(WorkerTally.worker_id, func.sum(WorkerTally.golden_correct), func.sum(WorkerTally.golden_total))
            .where(WorkerTally.provider == provider).group_by(WorkerTally.worker_id)).all()}
        speed: dict[str, dict[int, int]] = defaultdict(dict)
        for w, b, n in s.exec(select(WorkerSpeed.worker_id, WorkerSpeed.bucket, WorkerSpeed.n)
                              .where(WorkerSpeed.campaign_id == campaign.id)).all():
            speed[w][b] = n
        blocked = blocked_workers(s, provider)
        screening = dict(s.exec(select(Worker.worker_id, Worker.screening_score).where(
            Worker.provider == provider, Worker.screening_score.is_not(None))).all())
    crowd: dict[int, int] = defaultdict(int)
    for hist in speed.values():
        for b, n in hist.items():
            crowd[b] += n
    crowd_median = median(crowd)
    agreed = campaign_agreement(store, campaign, blocked)

    out = {}
    for x in mine:
        w = x.worker_id
        correct, total = golden.get(w, (0, 0))
        acc, n_tasks = agreed.get(w, (None, 0))
        out[w] = TrustInputs(
            worker_id=w, golden_correct=correct, golden_total=total, agreement=acc, agreement_tasks=n_tasks,
            screening_score=screening.get(w), median_seconds_per_item=median(speed.get(w, {})),
            crowd_median_seconds_per_item=crowd_median or None, timed_items=x.timed_items,
            left_share=x.left / x.pairs if x.pairs else None, pairwise_answers=x.pairs)
    return out
