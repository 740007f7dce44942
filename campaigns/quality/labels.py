"""The categorical answers of a stage as the quality checks read them: one Dawid-Skene fit
(``decomposition.aggregate.fit_labels``) over every valid label of the stage, golden tasks pinned
to their known answers, blocked workers left out of the fit.

Trust scores (``campaigns.quality.trust``) read its leave-one-out rows: does a worker agree with what
the *others* say? Adaptive overlap (``campaigns.adaptive.overlap``) reads its task posteriors: is an item
settled? Both read the same fit, made the same way. A poll fits twice, once for each: the
quality step may block workers, and adaptive overlap must then fit without them.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
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


@dataclass
class CodedLabels:
    """A stage's valid labelled judgements as integer arrays (a worker's first answer to a task
    only), with the sorted worker ids and labels the codes index: 2M judgements fit in ~25 MB."""

    task: np.ndarray
    worker: np.ndarray
    label: np.ndarray
    workers: list[str]
    labels: list[str]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"task": self.task, "worker": self.worker, "label": self.label})


def coded_labels(store: Store, stage: Stage) -> CodedLabels:
    """Read in stored order (``Judgement.id``: the first answer read is the one that counts) from
    the ``label`` column, so no JSON is parsed; codes follow the sorted ids and labels."""
    tasks, workers, labels = array("q"), array("q"), array("q")
    worker_code: dict[str, int] = {}
    label_code: dict[str, int] = {}
    with store.session() as s:
        result = s.connection().execute(  # plain rows, not ORM ones: 2M of them in seconds
            select(Judgement.task_id, Judgement.worker_id, Judgement.label)
            .where(Judgement.stage_id == stage.id, Judgement.valid, Judgement.label.is_not(None))
            .order_by(Judgement.id).execution_options(yield_per=50000))
        for t, w, lab in result:
            tasks.append(t)
            workers.append(worker_code.setdefault(w, len(worker_code)))
            labels.append(label_code.setdefault(lab, len(label_code)))
    task, worker, label = (np.frombuffer(a, dtype=np.int64) if len(a) else np.zeros(0, np.int64)
                           for a in (tasks, workers, labels))
    names, label_names = sorted(worker_code), sorted(label_code)
    worker = _recode(worker, worker_code, names)
    label = _recode(label, label_code, label_names)
    if len(task):  # first answer per (task, worker), in stored order
        _, first = np.unique(task * len(names) + worker, return_index=True)
        keep = np.sort(first)
        task, worker, label = task[keep], worker[keep], label[keep]
    return CodedLabels(task=task, worker=worker, label=label, workers=names, labels=label_names)


def _recode(codes: np.ndarray, seen: dict[str, int], ordered: list[str]) -> np.ndarray:
    """Codes in order of first appearance -> codes in sorted order (fits then meet workers and
    labels in the order string ids had, as before they were coded)."""
    if not len(codes):
        return codes
    to_sorted = np.empty(len(seen), dtype=np.int64)
    for rank, name in enumerate(ordered):
        to_sorted[seen[name]] = rank
    return to_sorted[codes]


def _golden_labels(store: Store, stage: Stage) -> Iterator[tuple[int, str | None]]:
    """(task id, its known label or None) of every golden task of the stage, streamed: a big stage
    has hundreds of thousands, and their answers as dicts would cost more than its labels."""
    with store.session() as s:
        rows = s.connection().execute(select(Task.id, Task.golden_answer).where(Task.stage_id == stage.id, Task.golden)
                                      .execution_options(yield_per=50000))
        for task_id, answer in rows:
            yield task_id, label_of(answer)


def golden_truth(store: Store, stage: Stage) -> tuple[dict[int, str], set[int]]:
    """(known labels by golden task id, ids of golden tasks)."""
    rows = list(_golden_labels(store, stage))
    return {t: lab for t, lab in rows if lab is not None}, {t for t, _ in rows}


def golden_codes(store: Store, stage: Stage, labels: list[str]) -> tuple[np.ndarray, pd.Series]:
    """(ids of golden tasks, known label codes by task id) in ``labels``' codes, as arrays."""
    code = {lab: i for i, lab in enumerate(labels)}
    ids, known, codes = array("q"), array("q"), array("q")
    for task_id, lab in _golden_labels(store, stage):
        ids.append(task_id)
        if lab in code:
            known.append(task_id)
            codes.append(code[lab])
    return (np.array(ids, dtype=np.int64),
            pd.Series(np.array(codes, dtype=np.int64), index=np.array(known, dtype=np.int64), dtype=np.int64))


def stage_labels(store: Store, stage: Stage) -> tuple[pd.DataFrame, pd.Series, set[int]]:
    """(``task, worker, label`` rows of the stage's valid labelled judgements, golden answers by
    task id, ids of golden tasks). A worker who met a task again on another page (golden tasks
    repeat; adaptive overlap's follow-up pages) counts with their first answer only."""
    coded = coded_labels(store, stage)
    truth, golden = golden_truth(store, stage)
    rows = pd.DataFrame({"task": coded.task, "worker": np.asarray(coded.workers, dtype=object)[coded.worker],
                         "label": np.asarray(coded.labels, dtype=object)[coded.label]})
    return rows, pd.Series(truth, dtype=object), golden


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


def agreement_counts(fit: LabelFit, golden: set[int] | np.ndarray, confident: float) -> dict[str, tuple[int, int]]:
    """Per worker (matches, tasks) on non-golden tasks where the other workers' posterior is at
    least ``confident``: there the others' label is nearly a known answer."""
    golden = golden if isinstance(golden, np.ndarray) else list(golden)
    r = fit.rows[(fit.rows["others_confidence"] >= confident) & ~fit.rows["task"].isin(golden)]
    hits = (r["label"] == r["others"]).groupby(r["worker"]).agg(["sum", "count"])
    return {str(w): (int(row["sum"]), int(row["count"])) for w, row in hits.iterrows()}
