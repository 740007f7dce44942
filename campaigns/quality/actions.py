"""Carrying out the trust policy: block, unblock, grant and revoke, each a recorded action.

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

from typing import Any

from sqlmodel import func, select

from campaigns.quality.pools import blocked_workers, members, set_member, sync_screening
from campaigns.quality.trust import chance_for, policy_for, worker_inputs
from campaigns.spec.stored import campaign_spec
from campaigns.store.checkpoints import checkpoint
from campaigns.store.database import Store
from campaigns.store.models import Campaign, Stage, Worker, WorkerAction, WorkerScore
from connectors.base import Connector, ConnectorError, PoolRef, PoolSpec
from payouts.trust import Action, TrustInputs, TrustScore, decide, explain, score


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
