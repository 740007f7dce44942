"""Store what a fetch brought back: raw assignments verbatim, their parsed judgements, the
workers, and the advanced cursor, all in one transaction (see ``campaigns.engine.poll``)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import update
from sqlmodel import select

from campaigns.quality.labels import label_of
from campaigns.store.checkpoints import checkpoint
from campaigns.store.database import Store
from campaigns.store.models import (
    Assignment,
    Campaign,
    Judgement,
    Page,
    PollCursor,
    Publication,
    Stage,
    Task,
    Worker,
    utcnow,
)
from campaigns.store.shard import WHOLE, Shard
from connectors.base import FetchResult
from decomposition.errors import AnswerError
from decomposition.kinds import get_kind

log = logging.getLogger(__name__)


def ingest(store: Store, campaign: Campaign, stage: Stage, result: FetchResult, shard: Shard = WHOLE) -> int:
    """Returns how many assignments were new. A few bulk statements whatever the fetch's size: the
    pages and tasks it names read once each, the assignments inserted with their new ids returned
    (insert-ignore: only new ones come back, and only they get judgements), judgements in one insert."""
    kind = get_kind(stage.kind)
    new = 0
    with store.write() as s:
        kept = []
        if result.assignments:
            refs = sorted({a.page_ref for a in result.assignments})
            pages = {ref: (page_id, task_keys) for ref, page_id, task_keys in s.exec(
                select(Publication.provider_ref, Page.id, Page.task_keys).join(Page, Page.id == Publication.page_id)
                .where(Publication.provider_ref.in_(refs), Page.stage_id == stage.id)).all()}
            # Only work on this stage's own publications is the campaign's to keep, review and pay.
            foreign = [a for a in result.assignments if a.page_ref not in pages]
            if foreign:
                log.warning("%s/%s: ignored %d assignment(s) on pages this stage did not publish (%s)",
                            campaign.name, stage.name, len(foreign), ", ".join(sorted({a.page_ref for a in foreign})))
            kept = [a for a in result.assignments if a.page_ref in pages]
        if kept:
            now = utcnow()
            rows = [dict(provider=a.provider, assignment_id=a.assignment_id, stage_id=stage.id,
                         page_id=pages[a.page_ref][0], page_ref=a.page_ref,
                         worker_id=a.worker_id, provider_status=a.status, accepted_at=a.accepted_at,
                         submitted_at=a.submitted_at, raw=a.raw, answers=a.answers, parse_error=a.parse_error,
                         fetched_at=now)
                    for a in kept]
            # Stored in the order they were handed in (the marketplace's ids are random, and the
            # first answers read decide trust and overlap), which is also a fixed lock order; the new
            # ids follow that order, and judgements are written in it.
            inserted = sorted(store.insert_new(s, Assignment, rows, ["provider", "assignment_id"],
                                               order=["submitted_at", "provider", "assignment_id"],
                                               returning=["id", "assignment_id"]))
            new = len(inserted)
            fresh = {aid for _, aid in inserted}
            _restatus(s, campaign, [a for a in kept if a.assignment_id not in fresh])
            store.insert_ignore(s, Worker, [dict(provider=campaign.provider, worker_id=w) for w in
                                            sorted({a.worker_id for a in kept})],
                                ["provider", "worker_id"])
            by_id = {a.assignment_id: a for a in kept}
            keys = sorted({k for _, aid in inserted for k in pages[by_id[aid].page_ref][1]})
            tasks = {t.key: t for t in s.exec(
                select(Task.id, Task.key, Task.payload, Task.golden, Task.golden_answer)
                .where(Task.stage_id == stage.id, Task.key.in_(keys))).all()} if keys else {}
            jrows = []
            for pk, aid in inserted:
                a = by_id[aid]
                for key in pages[a.page_ref][1]:
                    task = tasks[key]
                    value, error, correct = judge(kind, task, a.answers.get(key), a.parse_error)
                    jrows.append(dict(assignment_pk=pk, task_id=task.id, stage_id=stage.id,
                                      worker_id=a.worker_id, value=value, valid=error is None, error=error,
                                      golden_correct=correct, label=label_of(value)))
            store.insert_ignore(s, Judgement, jrows, ["assignment_pk", "task_id"])
        checkpoint("ingest.before_cursor")
        t = PollCursor.__table__  # type: ignore[attr-defined]
        moved = s.execute(update(t).where(t.c.stage_id == stage.id, t.c.shard == shard.index)
                          .values(cursor=result.cursor, updated_at=utcnow()))
        if moved.rowcount == 0:
            store.insert_ignore(s, PollCursor, [dict(stage_id=stage.id, shard=shard.index, shards=shard.count,
                                                     cursor=result.cursor)], ["stage_id", "shard"])
    return new


def _restatus(s, campaign: Campaign, known: list) -> None:
    """Known assignments read again keep their stored answer (as first received), but take the
    marketplace's status when it moved (approved or rejected elsewhere: auto-approval, another
    tool), so review settles them from it instead of a call the marketplace would refuse."""
    if not known:
        return
    status = {a.assignment_id: a.status for a in known}
    stored = s.exec(select(Assignment.id, Assignment.assignment_id, Assignment.provider_status).where(
        Assignment.provider == campaign.provider, Assignment.assignment_id.in_(sorted(status)))).all()
    moved = [{"id": pk, "provider_status": status[aid]} for pk, aid, was in stored if status[aid] != was]
    if moved:
        log.info("%s: %d known assignment(s) changed status on the marketplace", campaign.name, len(moved))
        s.execute(update(Assignment), moved)


def judge(kind, task: Task, answer: dict | None, parse_error: str | None) -> tuple[Any, str | None, bool | None]:
    """(value, error, golden_correct) for one task's answer within an assignment."""
    if parse_error:
        return None, parse_error, (False if task.golden else None)
    if answer is None:
        return None, "no answer for this item", (False if task.golden else None)
    try:
        value = kind.parse(task.payload, answer)
    except AnswerError as exc:
        return None, str(exc), (False if task.golden else None)
    correct = kind.grade(task.payload, task.golden_answer, value) if task.golden else None
    return value.model_dump(mode="json"), None, correct
