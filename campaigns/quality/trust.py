"""Worker quality during a poll: score every worker of the campaign from the evidence in the
store with ``payouts.trust``, and carry out the spec's policy.

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

Every action is a ``WorkerAction`` row with its evidence, written before the marketplace call and
retried on the next poll if the marketplace refused it; a newer action on the same worker and
pool supersedes an older one still pending, so an undo is never overtaken by a stale retry.

A block this campaign's policy made is reconsidered at every poll, because its evidence keeps
changing after it: agreement is re-read against a consensus that improves as spammers leave it,
and early on, with a few answers per item and spammers not yet blocked, that consensus is wrong
often enough to make an honest worker look like a clicker (benchmarks/RESULTS.md: two workers of
81% and 83% accuracy blocked after 2 pages, whose agreement later read 0.80 and 0.83). When the
posterior mean is back at or above ``block_below_trust`` (the best estimate is no longer below the
line; the block needed even the optimistic bound below it, and the gap between the two keeps a
borderline worker from flapping), the policy unblocks, once per worker and campaign; a second
block after that stands. An operator's block or unblock is never reconsidered.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from sqlalchemy import case
from sqlmodel import func, select

from campaigns.quality.labels import agreement_counts, stage_fit
from campaigns.quality.pools import blocked_workers, members, set_member, sync_screening
from campaigns.spec.stored import campaign_spec
from campaigns.store.checkpoints import checkpoint
from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, Judgement, Page, Stage, Task, Worker, WorkerAction, WorkerScore
from connectors.base import Choice, Connector, ConnectorError, PoolRef, PoolSpec
from decomposition.kinds import get_kind
from payouts.trust import Action, TrustInputs, TrustPolicy, TrustScore, decide, explain, score

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


def _evidence(x: TrustInputs, sc: TrustScore, reason: str) -> dict[str, Any]:
    return {"by": "policy", "trust": sc.trust, "lower": sc.lower, "upper": sc.upper, "flags": sc.flags,
            "golden_correct": x.golden_correct, "golden_total": x.golden_total, "agreement": x.agreement,
            "agreement_tasks": x.agreement_tasks, "screening_score": x.screening_score,
            "evidence_total": sc.evidence.total, "reason": reason}


def policy_blocks(s, provider: str, campaign_id: int) -> dict[str, WorkerAction]:
    """Per worker whose block in force was made by this campaign's trust policy, that block action
    (read in the caller's session): the blocks the policy may reconsider."""
    last: dict[str, WorkerAction] = {}
    for act in s.exec(select(WorkerAction).where(WorkerAction.provider == provider, WorkerAction.state == "done",
                                                 WorkerAction.action.in_(["block", "unblock"]))
                      .order_by(WorkerAction.id)).all():
        last[act.worker_id] = act
    return {w: a for w, a in last.items() if a.action == "block" and a.campaign_id == campaign_id
            and (a.evidence or {}).get("by") == "policy"}


def plan_action(s, store: Store, *, key: str, provider: str, worker_id: str, action: str, reason: str,
                pool: str | None = None, evidence: dict | None = None, campaign_id: int | None = None) -> None:
    """Record an action to carry out (inside the caller's write transaction); a key seen before is ignored."""
    store.insert_ignore(s, WorkerAction, [dict(
        idempotency_key=key, provider=provider, worker_id=worker_id, campaign_id=campaign_id, action=action,
        pool=pool, reason=reason, evidence=evidence or {}, state="planned")], ["idempotency_key"])


def apply_quality(store: Store, conn: Connector, campaign: Campaign, stage: Stage) -> int:
    """Score the campaign's workers, record the scores, plan and carry out the policy's actions.
    Returns how many workers were newly blocked."""
    spec = campaign_spec(campaign)
    review, provider = spec.review, campaign.provider
    sync_screening(store, conn, campaign)
    policy = policy_for(campaign, chance_for(store, campaign))
    inputs = worker_inputs(store, campaign)
    trusted_pool = spec.pools.trusted if review.trusted_above is not None else None
    trusted = members(store, provider, trusted_pool) if trusted_pool else set()
    block_pool = spec.pools.blocked if review.block_via == "pool" else None

    with store.write() as s:
        blocked = blocked_workers(s, provider)
        reconsider = policy_blocks(s, provider, campaign.id)
        unblocked_before = {w for w, ev in s.exec(select(WorkerAction.worker_id, WorkerAction.evidence)
                                                  .where(WorkerAction.campaign_id == campaign.id,
                                                         WorkerAction.action == "unblock")).all()
                            if (ev or {}).get("by") == "policy"}
        scores = {r.worker_id: r for r in s.exec(select(WorkerScore).where(WorkerScore.campaign_id == campaign.id))}
        for worker, x in inputs.items():
            sc = score(x, policy)
            reason = explain(sc, policy)
            row = scores.get(worker) or WorkerScore(provider=provider, worker_id=worker, campaign_id=campaign.id,
                                                   trust=0.0)
            row.trust = sc.trust
            row.parts = {**sc.parts.model_dump(), "lower": sc.lower, "upper": sc.upper, "flags": sc.flags}
            row.evidence = {**sc.evidence.model_dump(), "golden_correct": x.golden_correct,
                            "agreement_tasks": x.agreement_tasks, "decision": reason}
            s.add(row)
            decision = decide(sc, policy)
            evidence = _evidence(x, sc, reason)
            if decision == Action.block and review.block_below_trust is not None and worker not in blocked:
                again = ":again" if worker in unblocked_before else ""
                plan_action(s, store, key=f"block:{provider}:{worker}:{campaign.id}{again}", provider=provider,
                            worker_id=worker, action="block", pool=block_pool, evidence=evidence,
                            campaign_id=campaign.id, reason=f"{reason} (campaign {campaign.name})")
                if worker in trusted:
                    plan_action(s, store, key=f"revoke:{provider}:{worker}:{trusted_pool}:{campaign.id}",
                                provider=provider, worker_id=worker, action="revoke", pool=trusted_pool,
                                evidence=evidence, campaign_id=campaign.id, reason=reason)
            elif (worker in reconsider and review.block_below_trust is not None
                  and sc.trust >= review.block_below_trust):
                why = (f"{worker}: unblock, trust {sc.trust:.2f} >= {review.block_below_trust:.2f} on the "
                       f"evidence as it reads now (blocked at {reconsider[worker].evidence.get('trust', 0):.2f})")
                plan_action(s, store, key=f"unblock:{provider}:{worker}:{campaign.id}", provider=provider,
                            worker_id=worker, action="unblock", pool=reconsider[worker].pool,
                            evidence=_evidence(x, sc, why), campaign_id=campaign.id,
                            reason=f"{why} (campaign {campaign.name})")
            elif decision == Action.trust and trusted_pool and worker not in trusted | blocked:
                plan_action(s, store, key=f"grant:{provider}:{worker}:{trusted_pool}:{campaign.id}",
                            provider=provider, worker_id=worker, action="grant", pool=trusted_pool,
                            evidence=evidence, campaign_id=campaign.id, reason=reason)
    return carry_out_actions(store, conn, provider)


def _perform(conn: Connector, act: WorkerAction, refs: dict[str, PoolRef]) -> None:
    if act.pool and act.pool not in refs:
        refs[act.pool] = conn.ensure_pool(PoolSpec(name=act.pool, description=f"crowdbridge pool {act.pool}"))
    ref = refs.get(act.pool or "")
    if act.action in ("grant", "block") and ref is not None:
        conn.grant(ref, act.worker_id, 1)
    elif act.action in ("revoke", "unblock") and ref is not None:
        conn.revoke(ref, act.worker_id, act.reason)
    elif act.action == "block":
        conn.block(act.worker_id, act.reason)
    elif act.action == "unblock":
        conn.unblock(act.worker_id, act.reason)
    else:
        raise ValueError(f"unknown worker action {act.action!r}")


def carry_out_actions(store: Store, conn: Connector, provider: str) -> int:
    """Carry out every planned or failed action of ``provider``; returns how many blocks succeeded."""
    with store.session() as s:
        todo = s.exec(select(WorkerAction).where(WorkerAction.provider == provider,
                                                 WorkerAction.state.in_(["planned", "failed"]))
                      .order_by(WorkerAction.id)).all()
        newest = {(w, p): i for w, p, i in s.exec(
            select(WorkerAction.worker_id, WorkerAction.pool, func.max(WorkerAction.id))
            .where(WorkerAction.provider == provider).group_by(WorkerAction.worker_id, WorkerAction.pool)).all()}
    refs: dict[str, PoolRef] = {}
    done = 0
    for act in todo:
        if newest.get((act.worker_id, act.pool), act.id) > act.id:
            state, error = "superseded", None
        else:
            checkpoint("quality.before_action")
            try:
                _perform(conn, act, refs)
                state, error = "done", None
            except ConnectorError as exc:
                state, error = "failed", str(exc)
        with store.write() as s:
            row = s.get(WorkerAction, act.id)
            row.state, row.error = state, error
            s.add(row)
            if state != "done":
                continue
            if act.action in ("block", "unblock"):
                store.insert_ignore(s, Worker, [dict(provider=provider, worker_id=act.worker_id)],
                                    ["provider", "worker_id"])
                w = s.exec(select(Worker).where(Worker.provider == provider,
                                                Worker.worker_id == act.worker_id)).one()
                w.blocked = act.action == "block"
                s.add(w)
                done += act.action == "block"
            if act.pool:
                set_member(s, store, provider, act.pool, act.worker_id, act.action in ("grant", "block"))
    return done
