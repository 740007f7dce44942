"""Worker pools and screening: which workers a batch admits, and what the store knows about them.

A pool is a named group of workers: an MTurk qualification type or a Toloka skill on the
marketplace, ``PoolMember`` rows in the store. The marketplace enforces membership (a batch
requires or excludes pools, so a blocked or unscreened worker never sees the work); the store
keeps who is in which pool and why, so ``crowd workers`` can show it without a call per worker.

The screening test is a pool the marketplace fills by itself (MTurk scores the qualification
test with its answer key; Toloka's exam pool sets the skill), so its grades are read back into
the store (``Worker.screening_score``) rather than written out.
"""

from __future__ import annotations

import weakref

from sqlmodel import select

from campaigns.errors import CrowdError
from campaigns.spec.model import CampaignSpec
from campaigns.spec.stored import campaign_spec
from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, PoolMember, Stage, Worker
from connectors.base import Connector, PoolRef, PoolRequirement, PoolSpec, ScreeningTest
from decomposition.errors import InputError
from decomposition.screening import load_screening

# PoolRefs of screening tests already ensured by a connector object: ensuring costs several calls
# (a listing on MTurk; skill, project and pool look-ups on Toloka) and the answer never changes.
_SCREENING_REFS: weakref.WeakKeyDictionary[Connector, dict[str, PoolRef]] = weakref.WeakKeyDictionary()


def screening_test(spec: CampaignSpec) -> ScreeningTest | None:
    """The spec's screening test, or None; a bad file is one ``CrowdError`` line naming it."""
    if spec.screening is None:
        return None
    try:
        return load_screening(spec.path(spec.screening.test))
    except InputError as exc:
        raise CrowdError(f"screening test: {exc}") from None
    except OSError as exc:
        raise CrowdError(f"screening test {spec.screening.test}: {exc.strerror or exc}") from None


def screening_pool(conn: Connector, test: ScreeningTest) -> PoolRef:
    known = _SCREENING_REFS.setdefault(conn, {})
    if test.name not in known:
        known[test.name] = conn.ensure_screening(test)
    return known[test.name]


def requirements_for(campaign: Campaign, stage_name: str, conn: Connector) -> list[PoolRequirement]:
    """What a stage's batch demands of its workers: the spec's required pools (campaign-wide and
    the stage's own), a passed screening test, and not being in the blocked pool."""
    spec = campaign_spec(campaign)
    test = screening_test(spec)
    screened = spec.screening.pool if spec.screening else None
    stage = spec.stages.get(stage_name)
    names = [n for n in dict.fromkeys(spec.pools.required + (stage.pools if stage else [])) if n != screened]
    out = [PoolRequirement(pool=conn.ensure_pool(PoolSpec(name=n)), min_score=spec.pools.min_score) for n in names]
    if test is not None:
        out.append(PoolRequirement(pool=screening_pool(conn, test), min_score=test.pass_score))
    if spec.pools.blocked:
        out.append(PoolRequirement(pool=conn.ensure_pool(PoolSpec(name=spec.pools.blocked,
                                                                  description="Blocked workers")),
                                   exclude=True))
    return out


TRUSTED_LANE, PROBATION_LANE = "trusted", "probation"  # the batch lanes the engine uses (connectors.base)


def follow_up_pool(campaign: Campaign) -> str | None:
    """The pool adaptive overlap's follow-up pages are for (the spec's trusted pool), or None when
    anyone the stage admits may answer them."""
    spec = campaign_spec(campaign)
    if spec.overlap.follow_up_workers != "trusted" or spec.review.trusted_above is None:
        return None
    return spec.pools.trusted


def probation_pool(campaign: Campaign) -> str | None:
    """The pool probe pages are for (``campaigns.adaptive.probation``): only with follow-up pages for the
    trusted pool (otherwise suspects get follow-up work and with it evidence) and a blocking
    policy; ``review.probe_pages: 0`` turns them off."""
    spec = campaign_spec(campaign)
    if follow_up_pool(campaign) is None or not spec.review.probe_pages or spec.review.block_below_trust is None:
        return None
    return spec.pools.probation


def lane_pools(campaign: Campaign, stage: Stage) -> dict[str, str]:
    """Per lane the stage's batch gets, the pool it is open to: adaptive stages only (the lanes
    exist for follow-up pages and for the probes that go with them)."""
    if stage.max_assignments_per_page <= stage.assignments_per_page:
        return {}
    lanes = {TRUSTED_LANE: follow_up_pool(campaign), PROBATION_LANE: probation_pool(campaign)}
    return {name: pool for name, pool in lanes.items() if pool}


def sync_screening(store: Store, conn: Connector, campaign: Campaign, *, force: bool = False) -> int:
    """Read the screening test's grades from the marketplace into the store: ``Worker.screening_score``
    and membership of the spec's screening pool (active when passed). Only asks the marketplace
    when a worker of this campaign has no grade yet (or ``force``); returns the workers updated."""
    spec = campaign_spec(campaign)
    test = screening_test(spec)
    if test is None:
        return 0
    with store.session() as s:
        ungraded = s.exec(select(Worker.id).join(Assignment, Assignment.worker_id == Worker.worker_id)
                          .join(Stage, Stage.id == Assignment.stage_id)
                          .where(Stage.campaign_id == campaign.id, Worker.provider == campaign.provider,
                                 Worker.screening_score.is_(None)).limit(1)).first()
        graded = s.exec(select(Worker.id).where(Worker.provider == campaign.provider,
                                                Worker.screening_score.is_not(None)).limit(1)).first()
    if not force and ungraded is None and graded is not None:
        return 0
    scores = conn.pool_scores(screening_pool(conn, test))
    if not scores:
        return 0
    provider, pool = campaign.provider, spec.screening.pool
    with store.write() as s:
        store.insert_ignore(s, Worker, [dict(provider=provider, worker_id=w) for w in scores],
                            ["provider", "worker_id"])
        store.insert_ignore(s, PoolMember, [dict(provider=provider, pool=pool, worker_id=w, score=v,
                                                 active=v >= test.pass_score) for w, v in scores.items()],
                            ["provider", "pool", "worker_id"])
        workers = {w.worker_id: w for w in s.exec(select(Worker).where(
            Worker.provider == provider, Worker.worker_id.in_(list(scores)))).all()}
        members = {m.worker_id: m for m in s.exec(select(PoolMember).where(
            PoolMember.provider == provider, PoolMember.pool == pool,
            PoolMember.worker_id.in_(list(scores)))).all()}
        for wid, value in scores.items():
            workers[wid].screening_score = value
            members[wid].score, members[wid].active = value, value >= test.pass_score
            s.add(workers[wid])
            s.add(members[wid])
    return len(scores)


def members(store: Store, provider: str, pool: str) -> set[str]:
    """Active members of a pool as the store has them."""
    with store.session() as s:
        return set(s.exec(select(PoolMember.worker_id).where(PoolMember.provider == provider,
                                                             PoolMember.pool == pool, PoolMember.active)).all())


def set_member(s, store: Store, provider: str, pool: str, worker_id: str, active: bool, score: int = 1) -> None:
    """Mirror a membership change the marketplace accepted (inside the caller's write transaction)."""
    store.insert_ignore(s, PoolMember, [dict(provider=provider, pool=pool, worker_id=worker_id, score=score,
                                             active=active)], ["provider", "pool", "worker_id"])
    m = s.exec(select(PoolMember).where(PoolMember.provider == provider, PoolMember.pool == pool,
                                        PoolMember.worker_id == worker_id)).one()
    m.active, m.score = active, score
    s.add(m)


def blocked_workers(s, provider: str) -> set[str]:
    """Workers of ``provider`` the store has blocked, read in the caller's session (inside a write
    transaction where the caller needs the set to stay consistent with what it writes)."""
    return set(s.exec(select(Worker.worker_id).where(Worker.provider == provider, Worker.blocked)).all())
