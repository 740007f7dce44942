"""Aggregation with crowd-kit: categorical labels, and pairwise preferences with Bradley-Terry.

Everything is fitted once per stage (one crowd-kit fit over all tasks), never per task.

Pairwise conventions (documented here because exports depend on them):
- A pair is aggregated in response-id space, not screen positions: each judgement's label is
  ``first`` / ``second`` (the lexicographically smaller / larger response id of the pair) or
  ``tie``; the aggregate is reported as the winning response id or ``"tie"``. A pair whose
  aggregate is a tie stays in ``PairwiseResult.pairs`` with label "tie";
  ``preference_pairs`` leaves it out. For ``mv`` an even split goes to crowd-kit's default
  (the first label), with agreement 0.5: filter with ``min_agreement > 0.5`` to drop splits.
- Bradley-Terry input: ties are dropped (``ties="drop"``, default) or count half a win to each
  side (``ties="half"``: every decisive judgement is counted twice, a tie once each way).
- Scores: ``bt`` gives crowd-kit BradleyTerry strengths normalised to sum to 1 within each
  prompt (fitted over blocks of prompts, so the dense win matrix stays small); ``noisy_bt``
  gives crowd-kit NoisyBradleyTerry scores (one fit for the stage; also worker position bias and
  skill). Margins are score differences, comparable within one method only.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from decomposition.errors import InputError

LABEL_METHODS = ("mv", "ds", "glad", "mace")
# EM fits of a model of each worker: they may run long enough to need a word in the log, and are
# meaningless on one worker or one task
ITERATIVE = ("ds", "glad", "mace")
SCORE_METHODS = ("bt", "noisy_bt")
TIE = "tie"
_BT_BLOCK_NODES = 500  # responses per BradleyTerry fit: its win matrix is dense (nodes x nodes)


@contextmanager
def _quiet() -> Iterator[None]:
    """crowd-kit 1.4.2 trips many pandas deprecation warnings; users cannot act on them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


# --------------------------------------------------------------------------- categorical labels
def _label_model(method: str, seed: int) -> Any:
    from crowdkit.aggregation import GLAD, MACE, DawidSkene, MajorityVote

    makers = {"mv": MajorityVote, "ds": lambda: DawidSkene(n_iter=100), "glad": GLAD,
              "mace": lambda: MACE(random_state=seed)}
    if method not in makers:
        raise InputError(f"unknown method {method!r} (choose from {', '.join(LABEL_METHODS)})")
    return makers[method]()


def _require_columns(df: pd.DataFrame, columns: list[str], what: str = "input") -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        have = ", ".join(map(str, df.columns))
        raise InputError(f"{what} lacks column(s) {', '.join(missing)} (has: {have})")


def _first_answers(data: pd.DataFrame) -> pd.DataFrame:
    """The rows whose (task, worker) came first, as ``drop_duplicates(["task", "worker"])`` keeps.

    Why not drop_duplicates itself: it hashes string pairs, a quarter of a second per million
    answers; each column coded once and the pair checked as one integer is several times faster,
    and input without repeats (the usual case) is passed on uncopied."""
    task = pd.factorize(data["task"], use_na_sentinel=False)[0].astype(np.int64)
    worker, workers = pd.factorize(data["worker"], use_na_sentinel=False)
    repeated = pd.Series(task * len(workers) + worker).duplicated(keep="first").to_numpy()
    return data[~repeated] if repeated.any() else data


def aggregate_labels(df: pd.DataFrame, method: str = "mv", seed: int = 0,
                     true_labels: pd.Series | None = None) -> pd.DataFrame:
    """Aggregate ``task, worker, label`` rows into ``task, label, confidence``.

    ``confidence`` is the model's probability of the chosen label (for ``mv`` the share of votes).
    Repeated (task, worker) rows count once (the first is kept). ``true_labels`` (known answers by
    task, e.g. golden tasks) pin those tasks while Dawid-Skene learns the workers; other methods
    ignore them.

    >>> df = pd.DataFrame({"task": ["t1", "t1", "t1"], "worker": ["a", "b", "c"], "label": [1, 1, 0]})
    >>> aggregate_labels(df, "mv").to_dict("records")
    [{'task': 't1', 'label': 1, 'confidence': 0.6666666666666666}]
    """
    model = _label_model(method, seed)
    _require_columns(df, ["task", "worker", "label"])
    data = _first_answers(df[["task", "worker", "label"]])
    if data.empty:
        return pd.DataFrame({"task": [], "label": [], "confidence": []})
    golden = method == "ds" and true_labels is not None and len(true_labels)
    data, task_names = _coded(data.reset_index(drop=True), keep_tasks=bool(golden))
    with _quiet():
        if golden:
            model.fit(data, true_labels=true_labels)
        else:
            model.fit(data)
    labels = model.labels_
    probas = model.probas_.reindex(labels.index)
    tasks = labels.index.to_numpy() if task_names is None else task_names[labels.index.to_numpy()]
    return pd.DataFrame({"task": tasks, "label": labels.to_numpy(),
                         "confidence": probas.max(axis=1).to_numpy(dtype=float)})


def _coded(data: pd.DataFrame, keep_tasks: bool = False) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Text task and worker ids replaced by their ranks in sorted order, and the task names by rank.

    Why: crowd-kit's EM aligns frames on these ids every iteration, and on integers that takes
    half the time it takes on strings (Dawid-Skene on d_jn-product: 2.3 s instead of 3.5-4.5 s).
    The fit is the same: ranks sort as the names do, so every group, sum and tie comes out in the
    same order (tests/test_aggregate_csv.py holds the result to crowd-kit's own on the names).
    Ids that are not all text (or have gaps), and tasks that ``true_labels`` name, stay as they are.
    """
    columns = {}
    task_names = None
    for column in ("worker",) if keep_tasks else ("task", "worker"):
        if not pd.api.types.is_string_dtype(data[column]) or data[column].isna().any():
            continue
        codes, names = pd.factorize(data[column], sort=True)
        columns[column] = codes
        if column == "task":
            task_names = np.asarray(names, dtype=object)
    return (data.assign(**columns) if columns else data), task_names


def _read_text_columns(path: Path, columns: list[str]) -> pd.DataFrame:
    """``columns`` of the CSV at ``path`` as the text written there (``007`` stays ``007``, ``NA``
    stays ``NA``, an empty cell is ``""``).

    Why not one ``dtype=str`` read: pandas then converts every column after parsing it, 4-5 times
    the cost of the read itself. A column that pandas' own inference leaves as text is the text
    written; only one it made numbers, booleans or a mix of them (in chunks) is read again as text.
    """
    header = pd.read_csv(path, nrows=0)
    _require_columns(header, columns, what=str(path))
    at = sorted({header.columns.get_loc(c) for c in columns})  # by position: pandas renames repeated names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.DtypeWarning)  # a mixed column is read again below
        df = pd.read_csv(path, usecols=at, na_filter=False)
    inferred = [i for i, c in zip(at, df.columns, strict=True) if not pd.api.types.is_string_dtype(df[c])]
    if inferred:
        texts = pd.read_csv(path, usecols=inferred, dtype=str, na_filter=False)
        df[texts.columns] = texts
    return df[columns]


def aggregate_csv(path: str | Path, method: str = "mv", task_column: str = "task",
                  worker_column: str = "worker", label_column: str = "label",
                  out: str | Path | None = None, say: Callable[[str], None] | None = None) -> pd.DataFrame:
    """``crowd aggregate``: read a CSV of answers, aggregate, optionally write ``out``.

    Cells are read as text (ids like ``007`` stay intact). The result has columns
    ``task_column, label_column, confidence``. ``say`` hears what an iterative fit is about to
    work on and how long it took (GLAD can take a minute), so a log does not look stuck.
    """
    _label_model(method, 0)  # fail on an unknown method before reading anything
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    columns = [task_column, worker_column, label_column]
    try:
        data = _read_text_columns(path, columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from None
    empty = (data == "").any(axis=1).to_numpy()
    if empty.any():
        raise InputError(f"{path}: line {int(np.argmax(empty)) + 2}: empty task, worker or label")
    data = data.set_axis(["task", "worker", "label"], axis=1)
    if method in ITERATIVE:
        n_tasks, n_workers = data["task"].nunique(), data["worker"].nunique()
        if n_workers < 2 or n_tasks < 2:
            raise InputError(f"{path}: {method} models workers against each other and needs answers from at "
                             f"least 2 workers on at least 2 tasks (got {len(data)} row(s)); use --method mv")
    started = time.monotonic()
    if say is not None and method in ITERATIVE:
        say(f"{method}: fitting {len(data)} answers on {n_tasks} tasks by {n_workers} workers "
            "(up to 100 iterations)")
    result = aggregate_labels(data, method).rename(columns={"task": task_column, "label": label_column})
    if say is not None and method in ITERATIVE:
        say(f"{method}: fitted {len(result)} tasks in {time.monotonic() - started:.1f} s")
    if out is not None:
        result.to_csv(out, index=False)
    return result


# --------------------------------------------------------------------------- evidence about workers
@dataclass
class LabelFit:
    """A Dawid-Skene fit read two ways.

    ``probas``: per task, the posterior of each label (golden tasks pinned to their answer).
    ``rows``: per input row (task, worker, label), what the *other* workers' answers say about
    the task: ``others`` (their likeliest label), ``others_confidence`` (its posterior) and
    ``others_n`` (how many answered); NaN where nobody else answered."""

    probas: pd.DataFrame
    rows: pd.DataFrame
    posterior: pd.DataFrame | None = None  # per task, the posterior under the smoothed confusions


def fit_labels(data: pd.DataFrame, true_labels: pd.Series | None = None, *, exclude: Any = (),
               smoothing: float = 1.0, max_fit_rows: int | None = None) -> LabelFit:
    """Dawid-Skene (crowd-kit) over ``task, worker, label`` rows, golden answers as ``true_labels``,
    plus a leave-one-out posterior per row. Workers in ``exclude`` (e.g. blocked ones) are left out
    of the fit; their rows are still read against it.

    Why leave one out: a worker's agreement with an aggregate that includes their own vote is
    inflated, most at low overlap (at 3 answers a random clicker decides every 2-1 split). The
    posterior of the others is one E-step with the fitted worker confusions and the row's own
    factor left out. The confusions are re-estimated from DS's expected counts with ``smoothing``
    pseudo-counts per cell, so a worker seen on a handful of tasks weighs little: DS's own
    confusion matrices are unsmoothed and make such a worker near-certain.

    ``max_fit_rows`` bounds the fit's memory (crowd-kit's DS holds several frames per row: 2M
    rows peak at ~0.7 GB): above it, DS is fitted on the rows of a fixed sample of tasks, chosen
    by a hash of the task, and every row is then read against those confusions. A worker with no
    row in the sample has no confusion, so their rows count like an excluded worker's.
    """
    from crowdkit.aggregation import DawidSkene

    _require_columns(data, ["task", "worker", "label"])
    data = data[["task", "worker", "label"]].drop_duplicates(["task", "worker"]).reset_index(drop=True)
    fitted = ~data["worker"].isin(list(exclude))
    fit = data[fitted & _task_sample(data["task"], fitted, max_fit_rows)].reset_index(drop=True)
    if fit.empty:
        return LabelFit(probas=pd.DataFrame(),
                        rows=data.assign(others=None, others_confidence=np.nan, others_n=0))
    labels = sorted(data["label"].unique())
    gold = None
    if true_labels is not None:
        gold = true_labels[true_labels.isin(labels) & true_labels.index.isin(fit["task"])]
        gold = gold if len(gold) else None
    with _quiet():
        ds = DawidSkene(n_iter=100).fit(fit, true_labels=gold)
    probas = ds.probas_.reindex(columns=labels, fill_value=0.0)
    # expected confusion counts per (worker, observed label) x true label, smoothed
    weights = pd.DataFrame(probas.reindex(fit["task"]).to_numpy(), columns=labels)
    counts = weights.groupby([fit["worker"], fit["label"]]).sum()
    full = pd.MultiIndex.from_product([fit["worker"].unique(), labels], names=["worker", "label"])
    counts = counts.reindex(full, fill_value=0.0) + smoothing
    confusion = np.log(counts / counts.groupby(level="worker").transform("sum"))
    # log-likelihood of each row's answer under each true label; 0 for rows outside the fit
    worker_code, workers = pd.factorize(data["worker"])
    label_code = pd.Index(labels).get_indexer(data["label"])
    table = np.zeros((len(workers), len(labels), len(labels)))
    known = np.zeros(len(workers), dtype=bool)
    at = workers.get_indexer(confusion.index.get_level_values("worker"))
    table[at, pd.Index(labels).get_indexer(confusion.index.get_level_values("label"))] = confusion.to_numpy()
    known[at] = True
    fitted = fitted.to_numpy() & known[worker_code]
    row_ll = np.where(fitted[:, None], table[worker_code, label_code], 0.0)
    task_code, tasks_of = pd.factorize(data["task"])
    task_ll = np.zeros((task_code.max() + 1, len(labels)))
    np.add.at(task_ll, task_code, row_ll)
    prior = np.log(ds.priors_.reindex(labels).fillna(0).clip(lower=1e-9).to_numpy())
    full_ll = prior + task_ll
    full_ll = np.exp(full_ll - full_ll.max(axis=1, keepdims=True))
    posterior = pd.DataFrame(full_ll / full_ll.sum(axis=1, keepdims=True), columns=labels,
                             index=pd.Index(tasks_of, name="task"))
    loo = prior + task_ll[task_code] - row_ll
    loo = np.exp(loo - loo.max(axis=1, keepdims=True))
    loo /= loo.sum(axis=1, keepdims=True)
    others_n = np.bincount(task_code, weights=fitted)[task_code] - fitted
    answered = others_n > 0
    rows = data.assign(others=np.where(answered, np.asarray(labels, dtype=object)[loo.argmax(axis=1)], None),
                       others_confidence=np.where(answered, loo.max(axis=1), np.nan),
                       others_n=others_n.astype(int))
    # a task answered only by excluded workers has no evidence in the fit
    posterior = posterior[posterior.index.isin(data["task"][fitted])]
    return LabelFit(probas=probas, rows=rows, posterior=posterior)


def _task_sample(tasks: pd.Series, fitted: pd.Series, max_rows: int | None) -> np.ndarray:
    """Rows of a sample of tasks holding about ``max_rows`` of the fitted rows (every row where
    that many or fewer), chosen by a multiplicative hash of the task so a refit keeps most of it."""
    n = int(fitted.sum())
    if max_rows is None or n <= max_rows:
        return np.ones(len(tasks), dtype=bool)
    codes = pd.factorize(tasks)[0].astype(np.uint64) if tasks.dtype == object else tasks.to_numpy().astype(np.uint64)
    spread = (codes * np.uint64(2654435761)) % np.uint64(2**32)
    return spread < np.uint64(int(2**32 * max_rows / n))


# --------------------------------------------------------------------------- pairwise
@dataclass
class PairwiseResult:
    """``pairs``: criterion, prompt, pair, first_id, second_id, label (winner id or "tie"),
    agreement, confidence, n. ``scores``: criterion, prompt, response_id, score, rank (1 = best).
    ``workers``: worker, bias (probability of choosing left), skill — for ``noisy_bt`` only."""

    pairs: pd.DataFrame
    scores: pd.DataFrame
    method: str
    score_method: str
    workers: pd.DataFrame | None = None

    def ranking(self, prompt: str, criterion: str = "overall") -> list[str]:
        s = self.scores[(self.scores["prompt"] == prompt) & (self.scores["criterion"] == criterion)]
        return s.sort_values(["rank", "response_id"])["response_id"].tolist()


_JUDGEMENT_COLUMNS = ["pair", "prompt", "worker", "left_id", "right_id", "winner"]


def _judgements(judgements: pd.DataFrame) -> pd.DataFrame:
    _require_columns(judgements, _JUDGEMENT_COLUMNS, what="judgements")
    df = judgements.copy()
    if "criterion" not in df.columns:
        df["criterion"] = "overall"
    df = df[["criterion", *_JUDGEMENT_COLUMNS]].astype(str)
    bad = ~((df["winner"] == df["left_id"]) | (df["winner"] == df["right_id"]) | (df["winner"] == TIE))
    if bad.any():
        row = df[bad].iloc[0]
        raise InputError(f"judgement for pair {row['pair']!r}: winner {row['winner']!r} is neither "
                         f"{row['left_id']!r}, {row['right_id']!r} nor 'tie'")
    df = df.drop_duplicates(["criterion", "pair", "worker"], keep="first").reset_index(drop=True)
    first = np.where(df["left_id"] <= df["right_id"], df["left_id"], df["right_id"])
    df["first_id"] = first
    df["second_id"] = np.where(df["left_id"] <= df["right_id"], df["right_id"], df["left_id"])
    df["label"] = np.select([df["winner"] == df["first_id"], df["winner"] == df["second_id"]],
                            ["first", "second"], TIE)
    df["task"] = pd.MultiIndex.from_frame(df[["criterion", "pair"]]).factorize()[0]
    return df


def _pair_table(df: pd.DataFrame, method: str, seed: int, known: Mapping[str, str] | None = None) -> pd.DataFrame:
    truth = None
    if known:
        first = df.drop_duplicates("task").set_index("task")
        first = first[(first["criterion"] == "overall") & first["pair"].isin(list(known))]
        winner = first["pair"].map(known)
        truth = pd.Series(np.select([winner == first["first_id"], winner == first["second_id"]], ["first", "second"],
                                    TIE), index=first.index)
        truth = truth[truth.isin(df["label"].unique())]
    agg = aggregate_labels(df[["task", "worker", "label"]], method, seed, true_labels=truth).set_index("task")
    meta = df.groupby("task").agg(criterion=("criterion", "first"), prompt=("prompt", "first"),
                                  pair=("pair", "first"), first_id=("first_id", "first"),
                                  second_id=("second_id", "first"), n=("worker", "size"))
    meta["side"] = agg["label"]
    meta["confidence"] = agg["confidence"]
    agree = (df["label"].to_numpy() == meta["side"].reindex(df["task"]).to_numpy())
    meta["agreement"] = pd.Series(agree, index=df.index).groupby(df["task"]).mean()
    meta["label"] = np.select([meta["side"] == "first", meta["side"] == "second"],
                              [meta["first_id"], meta["second_id"]], TIE)
    cols = ["criterion", "prompt", "pair", "first_id", "second_id", "label", "agreement", "confidence", "n"]
    return meta.reset_index(drop=True)[cols]


def _bt_rows(df: pd.DataFrame, ties: str) -> pd.DataFrame:
    decisive = df[df["winner"] != TIE]
    if ties == "drop":
        return decisive
    tied = df[df["winner"] == TIE]
    return pd.concat([decisive, decisive, tied.assign(winner=tied["left_id"]),
                      tied.assign(winner=tied["right_id"])], ignore_index=True)


def _score_table(df: pd.DataFrame, score_method: str, ties: str, seed: int
                 ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    from crowdkit.aggregation import BradleyTerry, NoisyBradleyTerry

    rows = _bt_rows(df, ties)
    # One node per (criterion, prompt, response): all prompts go into the same fit.
    ends = [rows[["criterion", "prompt", c]].set_axis(["criterion", "prompt", "response_id"], axis=1)
            for c in ("left_id", "right_id", "winner")]
    stacked = pd.concat(ends, ignore_index=True)
    key = ["criterion", "prompt", "response_id"]
    codes = stacked.groupby(key, sort=False).ngroup().to_numpy().reshape(3, len(rows))
    node_frame = stacked.drop_duplicates(key).reset_index(drop=True)  # row n is node code n
    data = pd.DataFrame({"worker": rows["worker"].to_numpy(), "left": codes[0], "right": codes[1],
                         "label": codes[2]})
    workers = None
    if data.empty:
        node_frame["score"] = []
    elif score_method == "noisy_bt":
        with _quiet():
            model = NoisyBradleyTerry(n_iter=100, random_state=seed).fit(data)
        node_frame["score"] = model.scores_.reindex(range(len(node_frame))).to_numpy()
        workers = pd.DataFrame({"worker": model.biases_.index, "bias": model.biases_.to_numpy(),
                                "skill": model.skills_.reindex(model.biases_.index).to_numpy()})
    else:
        node_frame["score"] = np.nan
        group = node_frame.groupby(["criterion", "prompt"], sort=False).ngroup().to_numpy()
        block = _blocks(np.bincount(group), _BT_BLOCK_NODES)[group]  # block of each node
        row_block = block[codes[0]]
        for b in np.unique(row_block):  # one fit per block of whole prompts, not per prompt
            with _quiet():
                fitted = BradleyTerry(n_iter=1000, tol=1e-8).fit(data[row_block == b]).scores_
            node_frame.loc[fitted.index, "score"] = fitted.to_numpy()
        total = node_frame.groupby(["criterion", "prompt"])["score"].transform("sum")
        node_frame["score"] = node_frame["score"] / total.where(total > 0)
    node_frame["rank"] = (node_frame.groupby(["criterion", "prompt"])["score"]
                          .rank(ascending=False, method="min").astype("Int64"))
    return node_frame[["criterion", "prompt", "response_id", "score", "rank"]], workers


def _blocks(sizes: np.ndarray, limit: int) -> np.ndarray:
    """Assign consecutive groups to blocks of at most ``limit`` nodes (a bigger group gets its own)."""
    ends = np.cumsum(sizes)
    block = np.empty(len(sizes), dtype=int)
    current, start = 0, 0
    for g, end in enumerate(ends):
        if end - start > limit and g and ends[g - 1] > start:
            current, start = current + 1, ends[g - 1]
        block[g] = current
    return block


def aggregate_pairwise(judgements: pd.DataFrame, method: str = "ds",
                       score_method: Literal["bt", "noisy_bt"] = "bt",
                       ties: Literal["drop", "half"] = "drop", seed: int = 0,
                       known: Mapping[str, str] | None = None) -> PairwiseResult:
    """Aggregate a stage of pairwise judgements.

    ``judgements``: one row per judgement with ``pair, prompt, worker, left_id, right_id, winner``
    (``winner`` a response id or "tie"; ``left_id``/``right_id`` as displayed) and optionally
    ``criterion`` (default "overall"). Per pair: ``method`` (mv, ds, glad, mace) over
    first/second/tie; per prompt: Bradley-Terry scores and a ranking.

    ``known``: winner id by pair key for golden pairs whose judgements are included: Dawid-Skene
    learns each worker from them with the answer pinned; they are left out of the result.
    """
    if score_method not in SCORE_METHODS:
        raise InputError(f"unknown score method {score_method!r} (choose from {', '.join(SCORE_METHODS)})")
    if ties not in ("drop", "half"):
        raise InputError(f"ties must be 'drop' or 'half', not {ties!r}")
    _label_model(method, seed)
    df = _judgements(judgements)
    if df.empty:
        raise InputError("no judgements to aggregate")
    real = df[~df["pair"].isin(list(known))] if known else df
    if real.empty:
        raise InputError("no judgements to aggregate")
    scores, workers = _score_table(real, score_method, ties, seed)
    pairs = _pair_table(df, method, seed, known)
    if known:
        pairs = pairs[~pairs["pair"].isin(list(known))].reset_index(drop=True)
    return PairwiseResult(pairs=pairs, scores=scores, method=method, score_method=score_method, workers=workers)


def preference_pairs(result: PairwiseResult, min_agreement: float = 0.0,
                     criterion: str = "overall") -> list[dict[str, Any]]:
    """Chosen/rejected pairs (e.g. for DPO): non-tie aggregated pairs with enough agreement.

    ``margin`` is the score of the chosen minus the rejected response (None when a response has
    no score, e.g. all its judgements were ties); it can be negative when the pair's aggregate
    and the prompt-level ranking disagree.
    """
    p = result.pairs
    p = p[(p["criterion"] == criterion) & (p["label"] != TIE) & (p["agreement"] >= min_agreement)]
    rejected = np.where(p["label"] == p["first_id"], p["second_id"], p["first_id"])
    scores = result.scores[result.scores["criterion"] == criterion]
    score = scores.set_index(["prompt", "response_id"])["score"]
    chosen_s = score.reindex(pd.MultiIndex.from_arrays([p["prompt"], p["label"]])).to_numpy()
    rejected_s = score.reindex(pd.MultiIndex.from_arrays([p["prompt"], rejected])).to_numpy()
    margin = chosen_s - rejected_s
    return [{"prompt_id": pr, "chosen_id": c, "rejected_id": r, "margin": None if np.isnan(m) else float(m),
             "agreement": float(a)}
            for pr, c, r, m, a in zip(p["prompt"], p["label"], rejected, margin, p["agreement"], strict=True)]
