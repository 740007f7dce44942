"""Trust evidence kept by adding (``quality.tallies``) and agreement refit on a schedule
(``quality.agreement``): the counts equal a recount from every stored judgement, each judgement is
counted once however many pollers catch up at the same time, the speed median read from the
histogram is within its stated bound, the fit made from integer codes is the one made from the
stored strings, and the schedule refits small stages at every change and big ones only as they grow.
"""

from __future__ import annotations

import json
import random
import statistics
import threading
from collections import defaultdict
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import delete, update
from sqlmodel import select

from campaigns.demo.oracles import _load_truth, pairwise_oracle
from campaigns.demo.run import _spec_yaml
from campaigns.engine.launch import launch
from campaigns.engine.poll import poll
from campaigns.quality import agreement as agreement_module
from campaigns.quality.labels import agreement_counts, stage_fit
from campaigns.quality.pools import blocked_workers
from campaigns.quality.tallies import SPEED_STEPS, bucket, catch_up, median
from campaigns.spec.loading import load_spec
from campaigns.store.database import MIGRATIONS, open_store
from campaigns.store.models import (
    Assignment,
    Campaign,
    Judgement,
    Page,
    Stage,
    StageFit,
    Task,
    WorkerSpeed,
    WorkerTally,
)
from connectors.local import start_local

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "pairwise"


def _finished_campaign(tmp_path: Path, db_url: str):
    spec = load_spec(EXAMPLE / "spec.yaml")
    rows = [json.loads(x) for x in (EXAMPLE / spec.items).read_text().splitlines() if x.strip()][:12]
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    spec = spec.model_validate({**spec.model_dump(), "name": "tallies", "items": str(path), "budget": None,
                                "overlap": {"min": 3, "max": 3},
                                "review": {"block_below_trust": 0.5, "min_evidence": 6}})
    store = open_store(db_url)
    with start_local("mturk", workers=12, spammers=0.25, seed=3,
                     oracle=pairwise_oracle(_load_truth(EXAMPLE, rows)[1])) as mp:
        launch(spec, store, spec_text=_spec_yaml(spec), endpoint=mp.url)
        for _ in range(100):
            mp.advance(600)
            if poll(store, spec.name, endpoint=mp.url).all_done:
                break
        else:
            raise AssertionError("campaign did not finish")
    return store


def _recount(store) -> tuple[dict[str, dict[str, int]], dict[str, list[float]]]:
    """The tallies and per-assignment seconds per item, counted again from every stored row."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    seconds: dict[str, list[float]] = defaultdict(list)
    with store.session() as s:
        for j in s.exec(select(Judgement)).all():
            c = counts[j.worker_id]
            c["judgements"] += 1
            if j.golden_correct is not None:
                c["golden_total"] += 1
                c["golden_correct"] += j.golden_correct
            elif j.valid and j.value.get("choice") in ("left", "right") and "left_id" in j.value:
                c["pairs"] += 1
                c["left"] += j.value["choice"] == "left"
        for a, page in s.exec(select(Assignment, Page).join(Page, Page.id == Assignment.page_id)).all():
            if a.accepted_at and a.submitted_at:
                n = len(page.task_keys)
                counts[a.worker_id]["timed"] += 1
                counts[a.worker_id]["timed_items"] += n
                seconds[a.worker_id].append((a.submitted_at - a.accepted_at).total_seconds() / n)
    return {w: {k: v for k, v in c.items() if v} for w, c in counts.items()}, seconds  # as _tallies: no zeros


def _tallies(store) -> dict[str, dict[str, int]]:
    with store.session() as s:
        return {t.worker_id: {k: v for k, v in dict(judgements=t.judgements, golden_correct=t.golden_correct,
                                                    golden_total=t.golden_total, left=t.left, pairs=t.pairs,
                                                    timed=t.timed, timed_items=t.timed_items).items() if v}
                for t in s.exec(select(WorkerTally)).all()}


def test_tallies_equal_a_recount_and_count_each_judgement_once_under_concurrent_catch_ups(tmp_path, db_url):
    store = _finished_campaign(tmp_path, db_url)
    try:
        counts, seconds = _recount(store)
        assert any(c.get("golden_total") for c in counts.values()) and any(c.get("pairs") for c in counts.values())
        assert _tallies(store) == counts
        with store.session() as s:
            speeds: dict[str, dict[int, int]] = defaultdict(dict)
            for r in s.exec(select(WorkerSpeed)).all():
                speeds[r.worker_id][r.bucket] = r.n
            untallied = s.exec(select(Judgement.id).where(Judgement.tallied.is_(False))).all()
        assert not untallied
        for w, xs in seconds.items():  # a histogram's median, within half a bucket (4.4%) of the exact one
            exact, read = statistics.median_low(xs), median(speeds[w])
            assert abs(read / exact - 1) <= 2 ** (1 / (2 * SPEED_STEPS)) - 1 + 1e-9, (w, exact, read)

        with store.write() as s:  # as after the 0006 migration: nothing tallied yet
            s.execute(update(Judgement).values(tallied=False))
            s.execute(delete(WorkerTally))
            s.execute(delete(WorkerSpeed))
            s.execute(update(StageFit).values(labels=0))
        errors: list[BaseException] = []

        def catch_up_in_thread() -> None:
            try:
                catch_up(store, "mturk")
            except BaseException as exc:  # noqa: BLE001 - reported by the assert below
                errors.append(exc)

        threads = [threading.Thread(target=catch_up_in_thread) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert _tallies(store) == counts  # once each, not four times
        with store.session() as s:
            labelled = len(s.exec(select(Judgement.id).where(Judgement.valid, Judgement.label.is_not(None))).all())
            assert s.exec(select(StageFit.labels)).one() == labelled
    finally:
        store.close()


def test_agreement_from_integer_codes_is_the_fit_of_the_stored_labels(tmp_path):
    store = _finished_campaign(tmp_path, f"sqlite:///{tmp_path / 'crowd.db'}")
    try:
        with store.session() as s:
            stage = s.exec(select(Stage)).one()
            campaign = s.exec(select(Campaign)).one()
            blocked = blocked_workers(s, "mturk")
        assert blocked, "the policy should have blocked someone, so the fit leaves workers out"
        fit, _, golden = stage_fit(store, stage, blocked)  # the stage's labels as strings, fitted directly
        expected = agreement_counts(fit, golden, agreement_module.AGREEMENT_CONFIDENCE)
        got = agreement_module.refit(store, stage, blocked)
        assert {w: tuple(c) for w, c in got.items() if c[1]} == expected and expected
        shares = agreement_module.campaign_agreement(store, campaign, blocked)
        assert shares == {w: (h / n, n) for w, (h, n) in expected.items()}
    finally:
        store.close()


def test_the_schedule_refits_small_stages_at_every_change_and_big_ones_as_they_grow():
    def fit(labels: int, fitted: int, blocked=()) -> StageFit:
        return StageFit(stage_id=1, labels=labels, fitted_labels=fitted, blocked=sorted(blocked),
                        agreement={"a": [1, 2], "b": [0, 1]})

    due = agreement_module.due
    small, big = agreement_module.SMALL, 400_000
    assert due(fit(10, -1), set())  # never fitted
    assert due(fit(11, 10), set()) and not due(fit(10, 10), set())
    assert due(fit(10, 10), {"a"}) and not due(fit(10, 10, ["a"]), {"a"})
    assert not due(fit(10, 10), {"someone-elsewhere"})  # only this stage's workers count
    assert not due(fit(small + 1, small + 1), set())
    assert not due(fit(big + big // 4 - 1, big), set()) and due(fit(big + big // 4, big), set())
    assert not due(fit(big + 1000, big), {"a"})  # a block alone does not refit a big stage at once
    assert due(fit(big + big // 20, big), {"a"})


def test_median_of_a_histogram_is_within_half_a_bucket():
    rng = random.Random(7)
    for _ in range(200):
        xs = [rng.lognormvariate(2, 1.5) for _ in range(rng.randint(1, 60))]
        hist: dict[int, int] = defaultdict(int)
        for x in xs:
            hist[bucket(x)] += 1
        assert abs(median(hist) / statistics.median_low(xs) - 1) <= 2 ** (1 / (2 * SPEED_STEPS)) - 1 + 1e-9
    assert median({}) is None


def test_migration_0006_fills_labels_from_the_stored_values(db_url):
    from tests.test_store_ops import assignment, seed

    store = open_store(db_url)
    try:
        _, (stage_id,) = seed(store)
        with store.write() as s:
            tasks = [Task(stage_id=stage_id, key=f"k{n}") for n in range(3)]
            s.add_all([*tasks, Assignment(**assignment(stage_id, 1))])
            s.flush()
            task_ids = [t.id for t in tasks]
            apk = s.exec(select(Assignment.id)).one()
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0005")
            for n, value in enumerate(['{"choice": "left", "left_id": "a"}', '{"rewrite": "text"}', "null"]):
                conn.exec_driver_sql(
                    "INSERT INTO judgements (assignment_pk, task_id, stage_id, worker_id, value, valid) "
                    f"VALUES ({apk}, {task_ids[n]}, {stage_id}, 'W{n}', '{value}', true)")
    finally:
        store.close()
    store = open_store(db_url)  # back up to head
    try:
        with store.session() as s:
            got = sorted((j.worker_id, j.label, j.tallied) for j in s.exec(select(Judgement)).all())
        assert got == [("W0", "left", False), ("W1", None, False), ("W2", None, False)]
    finally:
        store.close()
