"""Worker quality during a poll: score every worker of the campaign from the evidence in the
store (golden answers, agreement, speed) with ``payouts.trust``, and carry out the policy's
actions. Every action is a ``WorkerAction`` row with its evidence, written before the
marketplace call and retried on the next poll if the marketplace refused it."""

from __future__ import annotations

from collections import defaultdict

from sqlmodel import select

from campaigns.models import Campaign, Judgement, Stage, Worker, WorkerAction, WorkerScore, utcnow
from campaigns.specs import campaign_spec
from campaigns.store import Store
from connectors.base import Connector, ConnectorError
from payouts.trust import Action, TrustInputs, TrustPolicy, decide, score


def policy_for(campaign: Campaign) -> TrustPolicy:
    review = campaign_spec(campaign).review
    return TrustPolicy(min_evidence=review.min_evidence,
                       block_below=review.block_below_trust if review.block_below_trust is not None else 0.0,
                       trust_above=review.trusted_above if review.trusted_above is not None else 1.0)


def worker_inputs(store: Store, campaign: Campaign) -> dict[str, TrustInputs]:
    """Golden evidence per worker across the campaign's stages."""
    with store.session() as s:
        rows = s.exec(select(Judgement.worker_id, Judgement.golden_correct).join(Stage, Stage.id == Judgement.stage_id)
                      .where(Stage.campaign_id == campaign.id, Judgement.golden_correct.is_not(None))).all()
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for worker, correct in rows:
        counts[worker][0] += int(bool(correct))
        counts[worker][1] += 1
    return {w: TrustInputs(worker_id=w, golden_correct=c, golden_total=t) for w, (c, t) in counts.items()}


def apply_quality(store: Store, conn: Connector, campaign: Campaign, stage: Stage) -> int:
    """Returns how many workers were newly blocked."""
    review = campaign_spec(campaign).review
    policy = policy_for(campaign)
    inputs = worker_inputs(store, campaign)

    with store.write() as s:
        for worker, x in inputs.items():
            sc = score(x, policy)
            s.add(WorkerScore(provider=campaign.provider, worker_id=worker, campaign_id=campaign.id, trust=sc.trust,
                              parts=sc.parts.model_dump(), evidence=sc.evidence.model_dump()))
            if review.block_below_trust is not None and decide(sc, policy) == Action.block:
                key = f"block:{campaign.provider}:{worker}:{campaign.id}"
                store.insert_ignore(s, WorkerAction, [dict(
                    idempotency_key=key, provider=campaign.provider, worker_id=worker, campaign_id=campaign.id,
                    action="block", reason=f"trust {sc.trust:.2f} below {policy.block_below} in {campaign.name}",
                    evidence={"golden_correct": x.golden_correct, "golden_total": x.golden_total,
                              "upper": sc.upper}, state="planned", created_at=utcnow())], ["idempotency_key"])
    return carry_out_actions(store, conn, campaign.provider)


def carry_out_actions(store: Store, conn: Connector, provider: str) -> int:
    with store.session() as s:
        todo = s.exec(select(WorkerAction).where(WorkerAction.provider == provider,
                                                 WorkerAction.state.in_(["planned", "failed"]))).all()
    done = 0
    for act in todo:
        try:
            if act.action == "block":
                conn.block(act.worker_id, act.reason)
            elif act.action == "unblock":
                conn.unblock(act.worker_id, act.reason)
            state, error = "done", None
        except ConnectorError as exc:
            state, error = "failed", str(exc)
        with store.write() as s:
            row = s.get(WorkerAction, act.id)
            row.state, row.error = state, error
            s.add(row)
            if state == "done" and act.action in ("block", "unblock"):
                w = s.exec(select(Worker).where(Worker.provider == act.provider,
                                                Worker.worker_id == act.worker_id)).first()
                if w is not None:
                    w.blocked = act.action == "block"
                    s.add(w)
                done += act.action == "block"
    return done
