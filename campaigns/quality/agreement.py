"""Agreement per worker, from each stage's last fit (``StageFit``), refit on a schedule bounded in cost.

Agreement reads a worker's labels against what the *others* say (``labels.agreement_counts``),
and that consensus is a fit of the whole stage: it improves as answers come in and spammers are
blocked, so it cannot be updated from the new answers alone. It is redone instead when the
stage's labels grew by ``GROWTH`` since the last fit, or when a worker of the stage was blocked or
unblocked and they grew by ``BLOCK_GROWTH``. Fits then come at sizes growing geometrically, and
their total work is a constant times the stage's final size: constant work per answer, however
big the stage (the other evidence is counted as it comes, ``quality.tallies``). A stage of up to
``SMALL`` labels is refit whenever anything changed, as every poll did before. A fit's memory is
bounded too: beyond ``FIT_ROWS`` labels the confusions are fitted on a sample of the stage's tasks
and every label is read against them (``decomposition.aggregate.fit_labels``).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from sqlmodel import select

from campaigns.quality.labels import agreement_counts, coded_labels, golden_codes
from campaigns.store.database import Store
from campaigns.store.models import Campaign, Stage, StageFit, utcnow
from decomposition.aggregate import fit_labels

AGREEMENT_CONFIDENCE = 0.8  # the others' posterior from which their label counts as nearly known
SMALL = 20000
GROWTH = 0.25
BLOCK_GROWTH = 0.05
FIT_ROWS = 250_000  # rows Dawid-Skene is fitted on (a sample of tasks beyond): ~0.3 GB at most


def due(fit: StageFit, blocked: set[str]) -> bool:
    """Whether the stage's stored fit is to be redone (see the module's docstring)."""
    if fit.fitted_labels < 0:
        return True
    moved = sorted(blocked & set(fit.agreement)) != fit.blocked
    grown = fit.labels - fit.fitted_labels
    if fit.labels <= SMALL:
        return grown != 0 or moved
    return grown >= GROWTH * fit.fitted_labels or (moved and grown >= BLOCK_GROWTH * fit.fitted_labels)


def campaign_agreement(store: Store, campaign: Campaign, blocked: set[str]) -> dict[str, tuple[float, int]]:
    """Per worker, the share of their labels matching what the other workers say, and on how many
    tasks, over every stage with categorical answers; stages whose fit is due are refit first."""
    with store.session() as s:
        fits = s.exec(select(StageFit, Stage).join(Stage, Stage.id == StageFit.stage_id)
                      .where(Stage.campaign_id == campaign.id).order_by(Stage.id)).all()
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for fit, stage in fits:
        counts = refit(store, stage, blocked) if due(fit, blocked) else fit.agreement
        for w, (hits, n) in counts.items():
            totals[w][0] += hits
            totals[w][1] += n
    return {w: (hits / n, n) for w, (hits, n) in totals.items() if n}


def refit(store: Store, stage: Stage, blocked: set[str]) -> dict[str, list[int]]:
    """Fit the stage's labels (integer-coded: ids and labels cost no memory per row), store per
    worker [matches, tasks] (every worker of the stage, 0 tasks where nothing was confident) with
    the label count and blocked workers it was made with, and return it."""
    with store.session() as s:
        labels_then = s.exec(select(StageFit.labels).where(StageFit.stage_id == stage.id)).one()
    coded = coded_labels(store, stage)
    counts: dict[str, list[int]] = {w: [0, 0] for w in coded.workers}
    out = [i for i, w in enumerate(coded.workers) if w in blocked]
    fitted = ~np.isin(coded.worker, out)
    if len(np.unique(coded.worker[fitted])) >= 3 and len(np.unique(coded.label)) >= 2:
        golden, known = golden_codes(store, stage, coded.labels)
        fit = fit_labels(coded.frame(), known, exclude=out, max_fit_rows=FIT_ROWS)
        for w, (hits, n) in agreement_counts(fit, golden, AGREEMENT_CONFIDENCE).items():
            counts[coded.workers[int(w)]] = [hits, n]
    with store.write() as s:
        row = s.exec(select(StageFit).where(StageFit.stage_id == stage.id)).one()
        row.fitted_labels, row.agreement, row.fitted_at = labels_then, counts, utcnow()
        row.blocked = sorted(blocked & set(counts))
        s.add(row)
    return counts
