"""``crowd workers``: who worked, how far they are trusted and why, and changing a worker's standing.

Changes are ``WorkerAction`` rows (with the reason as evidence) carried out on the marketplace
at once and retried on the next poll if it refused; pool membership is mirrored in the store.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

from sqlalchemy import case
from sqlmodel import func, select

from campaigns.errors import CrowdError
from campaigns.quality.actions import carry_out_actions, plan_action
from campaigns.store.connect import connector_for
from campaigns.store.database import Store
from campaigns.store.models import Campaign, Judgement, PoolMember, Stage, Worker, WorkerAction, WorkerScore

ACTIONS = ("grant", "revoke", "block", "unblock")


def list_workers(store: Store, campaign: str | None = None) -> list[dict]:
    with store.session() as s:
        c = None
        if campaign is not None:
            c = s.exec(select(Campaign).where(Campaign.name == campaign)).first()
            if c is None:
                raise CrowdError(f"no campaign named {campaign!r}")
        jq = select(Judgement.worker_id, func.count(), func.sum(case((Judgement.golden_correct, 1), else_=0)),
                    func.count(Judgement.golden_correct))
        if c is not None:
            jq = jq.join(Stage, Stage.id == Judgement.stage_id).where(Stage.campaign_id == c.id)
        counts = {w: (n, int(gc or 0), gt) for w, n, gc, gt in s.exec(jq.group_by(Judgement.worker_id)).all()}
        pools: dict[str, list[str]] = defaultdict(list)
        for m in s.exec(select(PoolMember).where(PoolMember.active)).all():
            pools[m.worker_id].append(m.pool)
        latest: dict[str, WorkerScore] = {}
        sq = select(WorkerScore).order_by(WorkerScore.id)
        if c is not None:
            sq = sq.where(WorkerScore.campaign_id == c.id)
        for sc in s.exec(sq).all():
            latest[sc.worker_id] = sc
        actions: dict[str, list[dict]] = defaultdict(list)
        for a in s.exec(select(WorkerAction).order_by(WorkerAction.id)).all():
            actions[a.worker_id].append({"action": a.action, "state": a.state, "reason": a.reason,
                                         "pool": a.pool, "evidence": a.evidence, "error": a.error,
                                         "at": a.created_at})
        rows = []
        for w in s.exec(select(Worker).order_by(Worker.worker_id)).all():
            if c is not None and w.worker_id not in counts:
                continue
            n, gc, gt = counts.get(w.worker_id, (0, 0, 0))
            sc = latest.get(w.worker_id)
            rows.append({"worker_id": w.worker_id, "provider": w.provider, "pools": sorted(pools[w.worker_id]),
                         "trust": None if sc is None else sc.trust, "parts": None if sc is None else sc.parts,
                         "evidence": None if sc is None else sc.evidence, "judgements": n,
                         "golden_correct": gc, "golden_total": gt, "screening_score": w.screening_score,
                         "blocked": w.blocked,
                         "actions": actions[w.worker_id]})
    return rows


def act(store: Store, action: str, worker_id: str, *, pool: str | None = None, provider: str = "mturk",
        campaign: str | None = None, reason: str = "", endpoint: str | None = None, unseen: bool = False) -> dict:
    """Change one worker's standing: ``grant``/``revoke`` a pool, ``block``/``unblock``. The action is
    stored first and carried out at once; a refusal leaves it ``failed`` for the next poll to retry.
    ``unblock`` undoes the worker's last block the way it was made (a hard block or the blocked pool).
    A worker none of whose answers is stored is refused unless ``unseen`` (an id from elsewhere)."""
    if action not in ACTIONS:
        raise CrowdError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    if action in ("grant", "revoke") and not pool:
        raise CrowdError(f"crowd workers {action} needs a POOL: crowd workers {action} WORKER POOL")
    environment = "local"
    c = None
    if campaign is not None:
        with store.session() as s:
            c = s.exec(select(Campaign).where(Campaign.name == campaign)).first()
        if c is None:
            raise CrowdError(f"no campaign named {campaign!r}")
        provider, environment, endpoint = c.provider, c.environment, endpoint or c.endpoint_url
    with store.session() as s:
        known = s.exec(select(Worker).where(Worker.provider == provider, Worker.worker_id == worker_id)).first()
    if known is None and not unseen:  # most likely a typo: acting on it would only write rows for nobody
        raise CrowdError(f"no {provider} worker {worker_id!r} in this store (a worker is known once an answer of "
                         "theirs is stored; --unseen acts on one anyway, --provider/--campaign pick the marketplace)")
    if action == "unblock" and pool is None:
        with store.session() as s:
            last = s.exec(select(WorkerAction).where(WorkerAction.provider == provider,
                                                     WorkerAction.worker_id == worker_id,
                                                     WorkerAction.action == "block", WorkerAction.state == "done")
                          .order_by(WorkerAction.id.desc())).first()
        pool = last.pool if last else None
    conn = connector_for(provider, environment, endpoint)
    reason = reason or f"{action} by operator"
    key = f"{action}:{provider}:{worker_id}:{pool or '-'}:manual:{uuid.uuid4().hex}"
    with store.write() as s:
        store.insert_ignore(s, Worker, [dict(provider=provider, worker_id=worker_id)], ["provider", "worker_id"])
        plan_action(s, store, key=key, provider=provider, worker_id=worker_id, action=action, pool=pool,
                    reason=reason, evidence={"by": "operator"}, campaign_id=c.id if c else None)
    carry_out_actions(store, conn, provider)
    with store.session() as s:
        row = s.exec(select(WorkerAction).where(WorkerAction.idempotency_key == key)).one()
    where = f" ({'pool ' + pool if pool else 'marketplace block'})" if action in ("block", "unblock") else \
        f" {'to' if action == 'grant' else 'from'} pool {pool}"
    return {"worker_id": worker_id, "action": action, "pool": pool, "state": row.state, "error": row.error,
            "message": f"{action} {worker_id}{where}: {row.state}" + (f" ({row.error})" if row.error else "")}
