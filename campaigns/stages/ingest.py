"""Store what a fetch brought back: raw assignments verbatim, their parsed judgements, the
workers, and the advanced cursor, all in one transaction (see ``campaigns.engine.poll``)."""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import select

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
from connectors.base import FetchResult
from decomposition.errors import AnswerError
from decomposition.kinds import get_kind

log = logging.getLogger(__name__)


def ingest(store: Store, campaign: Campaign, stage: Stage, result: FetchResult) -> int:
    """Returns how many assignments were new."""
    kind = get_kind(stage.kind)
    new = 0
    with store.write() as s:
        if result.assignments:
            refs = sorted({a.page_ref for a in result.assignments})
            pages = {ref: page for ref, page in s.exec(
                select(Publication.provider_ref, Page).join(Page, Page.id == Publication.page_id)
                .where(Publication.provider_ref.in_(refs), Page.stage_id == stage.id)).all()}
            # Only work on this stage's own publications is the campaign's to keep, review and pay.
            foreign = [a for a in result.assignments if a.page_ref not in pages]
            if foreign:
                log.warning("%s/%s: ignored %d assignment(s) on pages this stage did not publish (%s)",
                            campaign.name, stage.name, len(foreign), ", ".join(sorted({a.page_ref for a in foreign})))
            result = result.model_copy(update={"assignments": [a for a in result.assignments if a.page_ref in pages]})
        if result.assignments:
            rows = [dict(provider=a.provider, assignment_id=a.assignment_id, stage_id=stage.id,
                         page_id=pages[a.page_ref].id, page_ref=a.page_ref,
                         worker_id=a.worker_id, provider_status=a.status, accepted_at=a.accepted_at,
                         submitted_at=a.submitted_at, raw=a.raw, answers=a.answers, parse_error=a.parse_error,
                         fetched_at=utcnow())
                    for a in result.assignments]
            # Stored in the order they were handed in (the marketplace's ids are random, and the
            # first answers read decide trust and overlap), which is also a fixed lock order.
            new = store.insert_ignore(s, Assignment, rows, ["provider", "assignment_id"],
                                      order=["submitted_at", "provider", "assignment_id"])
            store.insert_ignore(s, Worker, [dict(provider=campaign.provider, worker_id=w) for w in
                                            sorted({a.worker_id for a in result.assignments})],
                                ["provider", "worker_id"])
            stored = s.exec(select(Assignment).where(
                Assignment.provider == campaign.provider,
                Assignment.assignment_id.in_([a.assignment_id for a in result.assignments]))
                .order_by(Assignment.id)).all()  # as received: an index on the marketplace's ids must not order them
            keys = sorted({k for p in pages.values() for k in p.task_keys})
            tasks = {t.key: t for t in s.exec(select(Task).where(Task.stage_id == stage.id,
                                                                  Task.key.in_(keys))).all()}
            jrows = []
            for a in stored:
                page = pages[a.page_ref]
                for key in page.task_keys:
                    task = tasks[key]
                    value, error, correct = judge(kind, task, a.answers.get(key), a.parse_error)
                    jrows.append(dict(assignment_pk=a.id, task_id=task.id, stage_id=stage.id,
                                      worker_id=a.worker_id, value=value, valid=error is None, error=error,
                                      golden_correct=correct))
            store.insert_ignore(s, Judgement, jrows, ["assignment_pk", "task_id"])
        checkpoint("ingest.before_cursor")
        cursor = s.exec(select(PollCursor).where(PollCursor.stage_id == stage.id)).first()
        if cursor is None:
            store.insert_ignore(s, PollCursor, [dict(stage_id=stage.id, cursor=result.cursor)], ["stage_id"])
        else:
            cursor.cursor = result.cursor
            cursor.updated_at = utcnow()
            s.add(cursor)
    return new


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
