"""The categorical answers of a stage as the quality checks read them: one Dawid-Skene fit
(``decomposition.aggregate.fit_labels``) over every valid label of the stage, golden tasks pinned
to their known answers, blocked workers left out of the fit.

Trust scores (``campaigns.quality.trust``) read its leave-one-out rows: does a worker agree with what
the *others* say? Adaptive overlap (``campaigns.adaptive.overlap``) reads its task posteriors: is an item
settled? Both read the same fit, made the same way. A poll fits twice, once for each: the
quality step may block workers, and adaptive overlap must then fit without them.
"""

from __future__ import annotations

import pandas as pd
from sqlmodel import select

from campaigns.quality.pools import blocked_workers
from campaigns.store.database import Store
from campaigns.store.models import Campaign, Judgement, Stage, Task
from decomposition.aggregate import LabelFit, fit_labels

LABEL_KEYS = ("choice", "label", "verdict")


def label_of(value: dict | None) -> str | None:
    """A categorical label of a stored judgement or golden answer, or None where answers are free text."""
    if not value:
        return None
    for key in LABEL_KEYS:
        if isinstance(value.get(key), str):
            return value[key]
    return None


def stage_labels(store: Store, stage: Stage) -> tuple[pd.DataFrame, pd.Series, set[int]]:
    """(``task, worker, label`` rows of the stage's valid labelled judgements, golden answers by
    task id, ids of golden tasks). A worker who met a task again on another page (golden tasks
    repeat; adaptive overlap's follow-up pages) counts with their first answer only."""
    with store.session() as s:
        judged = s.exec(select(Judgement.task_id, Judgement.worker_id, Judgement.value)
                        .where(Judgement.stage_id == stage.id, Judgement.valid).order_by(Judgement.id)).all()
        golden = s.exec(select(Task.id, Task.golden_answer).where(Task.stage_id == stage.id, Task.golden)).all()
    rows, seen = [], set()
    for t, w, v in judged:
        if (lab := label_of(v)) is not None and (t, w) not in seen:
            seen.add((t, w))
            rows.append((t, w, lab))
    truth = {t: lab for t, answer in golden if (lab := label_of(answer)) is not None}
    return (pd.DataFrame(rows, columns=["task", "worker", "label"]), pd.Series(truth, dtype=object),
            {t for t, _ in golden})


def stage_fit(store: Store, stage: Stage, blocked: set[str] | None = None
              ) -> tuple[LabelFit | None, pd.DataFrame, set[int]]:
    """(the stage's fit, None when there is too little to fit: under three unblocked workers or a
    single label; the rows it was made from; the golden task ids)."""
    if blocked is None:
        with store.session() as s:
            blocked = blocked_workers(s, s.get(Campaign, stage.campaign_id).provider)
    rows, truth, golden = stage_labels(store, stage)
    fit_rows = rows[~rows["worker"].isin(list(blocked))]
    if fit_rows["worker"].nunique() < 3 or rows["label"].nunique() < 2:
        return None, rows, golden
    return fit_labels(rows, truth, exclude=blocked), rows, golden


def agreement_counts(fit: LabelFit, golden: set[int], confident: float) -> dict[str, tuple[int, int]]:
    """Per worker (matches, tasks) on non-golden tasks where the other workers' posterior is at
    least ``confident``: there the others' label is nearly a known answer."""
    r = fit.rows[(fit.rows["others_confidence"] >= confident) & ~fit.rows["task"].isin(list(golden))]
    hits = (r["label"] == r["others"]).groupby(r["worker"]).agg(["sum", "count"])
    return {str(w): (int(row["sum"]), int(row["count"])) for w, row in hits.iterrows()}
