"""``crowd workers``: who worked, how far they are trusted, and changing a worker's standing.

Changes are ``WorkerAction`` rows (with the reason as evidence) carried out on the marketplace
at once and retried on the next poll if it refused; pool membership is mirrored in the store.
"""

from __future__ import annotations

from collections import defaultdict

from sqlmodel import func, select

from campaigns.connect import connector_for
from campaigns.errors import CrowdError
from campaigns.models import Campaign, Judgement, PoolMember, Stage, Worker, WorkerAction, WorkerScore, utcnow
from campaigns.quality import carry_out_actions
from campaigns.store import Store
from connectors.base import PoolSpec

ACTIONS = ("grant", "revoke", "block", "unblock")


def list_workers(store: Store, campaign: str | None = None) -> list[dict]:
    with store.session() as s:
        c = None
        if campaign is not None:
            c = s.exec(select(Campaign).where(Campaign.name == campaign)).first()
            if c is None:
                raise CrowdError(f"no campaign named {campaign!r}")
        jq = select(Judgement.worker_id, func.count(), func.sum(func.coalesce(Judgement.golden_correct.cast(int), 0)),
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
                                         "pool": a.pool, "at": a.created_at})
        rows = []
        for w in s.exec(select(Worker).order_by(Worker.worker_id)).all():
            if c is not None and w.worker_id not in counts:
                continue
            n, gc, gt = counts.get(w.worker_id, (0, 0, 0))
            sc = latest.get(w.worker_id)
            rows.append({"worker_id": w.worker_id, "provider": w.provider, "pools": sorted(pools[w.worker_id]),
                         "trust": None if sc is None else sc.trust, "parts": None if sc is None else sc.parts,
                         "evidence": None if sc is None else sc.evidence, "judgements": n,
                         "golden_correct": gc, "golden_total": gt, "blocked": w.blocked,
                         "actions": actions[w.worker_id]})
    return rows


def act(store: Store, action: str, worker_id: str, *, pool: str | None = None, provider: str = "mturk",
        campaign: str | None = None, reason: str = "", endpoint: str | None = None) -> dict:
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
    conn = connector_for(provider, environment, endpoint)
    reason = reason or f"{action} by operator"
    if action in ("grant", "revoke"):
        ref = conn.ensure_pool(PoolSpec(name=pool))
        if action == "grant":
            conn.grant(ref, worker_id, 1)
        else:
            conn.revoke(ref, worker_id, reason)
        with store.write() as s:
            store.insert_ignore(s, PoolMember, [dict(provider=provider, pool=pool, worker_id=worker_id)],
                                ["provider", "pool", "worker_id"])
            m = s.exec(select(PoolMember).where(PoolMember.provider == provider, PoolMember.pool == pool,
                                                PoolMember.worker_id == worker_id)).one()
            m.active = action == "grant"
            s.add(m)
            s.add(WorkerAction(idempotency_key=f"{action}:{provider}:{worker_id}:{pool}:{utcnow().isoformat()}",
                               provider=provider, worker_id=worker_id, action=action, pool=pool, reason=reason,
                               state="done", campaign_id=c.id if c else None))
        return {"worker_id": worker_id, "action": action, "pool": pool, "state": "done",
                "message": f"{action}ed {worker_id} {'to' if action == 'grant' else 'from'} pool {pool}"}
    with store.write() as s:
        store.insert_ignore(s, Worker, [dict(provider=provider, worker_id=worker_id)], ["provider", "worker_id"])
        s.add(WorkerAction(idempotency_key=f"{action}:{provider}:{worker_id}:manual:{utcnow().isoformat()}",
                           provider=provider, worker_id=worker_id, action=action, reason=reason, state="planned",
                           campaign_id=c.id if c else None))
    carry_out_actions(store, conn, provider)
    with store.session() as s:
        last = s.exec(select(WorkerAction).where(WorkerAction.worker_id == worker_id)
                      .order_by(WorkerAction.id.desc())).first()
    return {"worker_id": worker_id, "action": action, "state": last.state, "error": last.error,
            "message": f"{action} {worker_id}: {last.state}" + (f" ({last.error})" if last.error else "")}
