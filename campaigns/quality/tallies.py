"""Trust evidence kept by adding: each judgement counted once into ``WorkerTally`` / ``WorkerSpeed``.

Why: scoring from every stored answer made a poll's quality step grow with the campaign
(benchmarks/RESULTS.md: 2.9 ms per new answer at 10k stored answers, 106 ms at 1M). The evidence
that only grows (answers, golden answers right and wrong, pairwise sides, timed items and a
speed histogram) is added from the judgements not yet tallied, in chunks, each one transaction
that marks its judgements (``UPDATE ... WHERE NOT tallied RETURNING``: a judgement is counted by
exactly one poller, and a pass killed half-way leaves the rest for the next) under the campaign's
lock (passes on one campaign never wait on each other's rows in opposite orders).

Speed is a histogram on a 1/8-octave scale, so a median is read from sums: within 4.4% of the
exact one, where the policy's line is a factor of 0.3.
"""

from __future__ import annotations

import math
from collections import defaultdict

from sqlalchemy import update
from sqlmodel import func, select

from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, Judgement, Stage, StageFit, WorkerSpeed, WorkerTally

SPEED_STEPS = 8  # buckets per doubling of seconds per item
CHUNK = 20000  # judgements per transaction: bounds a pass's memory, however much is waiting
COUNTS = ("judgements", "golden_correct", "golden_total", "left", "pairs", "timed", "timed_items")


def bucket(seconds_per_item: float) -> int:
    return math.floor(SPEED_STEPS * math.log2(max(seconds_per_item, 1e-3)))


def median(histogram: dict[int, int]) -> float | None:
    """The median of a speed histogram: the middle of the bucket holding the middle assignment."""
    total = sum(histogram.values())
    if not total:
        return None
    seen = 0
    for b in sorted(histogram):
        seen += histogram[b]
        if seen >= total / 2:
            return 2 ** ((b + 0.5) / SPEED_STEPS)
    return None  # pragma: no cover - the loop always reaches the total


def catch_up(store: Store, provider: str) -> int:
    """Tally every judgement of ``provider``'s campaigns not tallied yet; returns how many. Other
    campaigns count too: golden answers are history that follows a worker across campaigns."""
    with store.session() as s:
        stages = s.exec(select(Stage.id, Stage.campaign_id).join(Campaign, Campaign.id == Stage.campaign_id)
                        .where(Campaign.provider == provider).order_by(Stage.id)).all()
        waiting = [(sid, cid) for sid, cid in stages
                   if s.exec(select(Judgement.id).where(Judgement.stage_id == sid, Judgement.tallied.is_(False))
                             .limit(1)).first() is not None]
    done = 0
    for stage_id, campaign_id in waiting:
        while n := _tally_chunk(store, provider, campaign_id, stage_id):
            done += n
    return done


def _tally_chunk(store: Store, provider: str, campaign_id: int, stage_id: int) -> int:
    j = Judgement.__table__  # type: ignore[attr-defined]
    with store.write() as s:
        store.lock_campaign(s, campaign_id)
        chunk = select(j.c.id).where(j.c.stage_id == stage_id, j.c.tallied.is_(False)).order_by(j.c.id).limit(CHUNK)
        got = s.execute(update(j).where(j.c.id.in_(chunk.scalar_subquery()), j.c.tallied.is_(False))
                        .values(tallied=True)
                        .returning(j.c.id, j.c.assignment_pk, j.c.worker_id, j.c.value, j.c.valid,
                                   j.c.golden_correct, j.c.label)).all()
        if not got:
            return 0
        counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
        labels = 0
        for _, _, worker, value, valid, correct, label in got:
            c = counts[worker]
            c["judgements"] += 1
            if correct is not None:
                c["golden_total"] += 1
                c["golden_correct"] += bool(correct)
            elif valid and value and value.get("choice") in ("left", "right") and "left_id" in value:
                c["pairs"] += 1
                c["left"] += value["choice"] == "left"
            labels += bool(valid and label is not None)
        speeds = _time(s, {row[0] for row in got}, {row[1] for row in got}, counts)
        store.add_counts(s, WorkerTally, [dict(campaign_id=campaign_id, provider=provider, worker_id=w, **c)
                                          for w, c in counts.items()], ["campaign_id", "worker_id"], COUNTS)
        store.add_counts(s, WorkerSpeed, [dict(campaign_id=campaign_id, worker_id=w, bucket=b, n=n)
                                          for (w, b), n in speeds.items()], ["campaign_id", "worker_id", "bucket"],
                         ["n"])
        store.add_counts(s, StageFit, [dict(stage_id=stage_id, labels=labels)], ["stage_id"], ["labels"])
        return len(got)


def _time(s, ids: set[int], assignment_pks: set[int], counts) -> dict[tuple[str, int], int]:
    """Time each assignment once: in the chunk that holds its first judgement (an assignment's
    judgements may straddle two chunks), over all its items."""
    firsts = {pk: (first, n) for pk, first, n in s.exec(
        select(Judgement.assignment_pk, func.min(Judgement.id), func.count())
        .where(Judgement.assignment_pk.in_(list(assignment_pks))).group_by(Judgement.assignment_pk)).all()}
    mine = [pk for pk, (first, _) in firsts.items() if first in ids]
    speeds: dict[tuple[str, int], int] = defaultdict(int)
    for pk, worker, accepted, submitted in s.exec(
            select(Assignment.id, Assignment.worker_id, Assignment.accepted_at, Assignment.submitted_at)
            .where(Assignment.id.in_(mine), Assignment.accepted_at.is_not(None),
                   Assignment.submitted_at.is_not(None))).all():
        n = max(1, firsts[pk][1])
        counts[worker]["timed"] += 1
        counts[worker]["timed_items"] += n
        speeds[(worker, bucket((submitted - accepted).total_seconds() / n))] += 1
    return speeds
