"""Output as a cron log gets it: stdout is a pipe, not a terminal. Lines are whole (no wrapping at
80 columns mid-sentence, no name cut short), the poll line says what the poll made of a stage,
``crowd costs`` prints every figure the README promises (checked against sums made here from the
store's own rows), ``--plot`` writes spend over the marketplace's clock and says "wrote FILE", and
an iterative aggregation says what it is fitting."""

from __future__ import annotations

import csv
import json
import statistics
from decimal import Decimal
from pathlib import Path

import pytest
from engine_helpers import crowd, launch_in_process, market, sequential_connector, write_campaign
from sqlmodel import select

from campaigns.demo.run import STEP_S
from campaigns.engine.poll import poll
from campaigns.store.database import open_store
from campaigns.store.models import Assignment, Campaign, Item, LedgerEntry, Stage

NAME = "nightly-preference-collection-for-the-assistant-model-release-candidate-with-a-long-name"


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[str, list[str]]:
    """(store URL, the poll lines) of a finished campaign whose name is longer than 80 columns, with
    wage top-ups and quality bonuses so every kind of spend is there."""
    d = tmp_path_factory.mktemp("cron")
    spec = write_campaign(d, name=NAME, features=True)
    db = f"sqlite:///{d / 'crowd.db'}"
    lines = []
    with market("mturk") as mp:
        launch_in_process(spec, db, mp.url)
        for _ in range(12):
            mp.advance(STEP_S)
            with open_store(db) as store:
                report = poll(store, endpoint=mp.url, connector=sequential_connector("mturk", mp.url))
            lines.append(report.summary_line())
            if report.all_done:
                break
    assert report.all_done
    return db, lines


def test_the_poll_that_finishes_a_stage_says_done(finished):
    _, lines = finished
    assert lines[-1].endswith(", done"), lines[-1]  # was ", open": status read before advance()
    assert all(line.count(NAME) == 1 for line in lines)


def test_status_piped_keeps_whole_names_and_lines(finished):
    db, _ = finished
    r = crowd("status", db=db)
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if NAME in line]
    assert len(rows) == 1  # the whole name, on one line: not wrapped, not cut to "nightly-pre…"
    assert "done" in rows[0] and "…" not in r.stdout


def _figures(db: str) -> dict:
    """The campaign's figures summed here from the store's own rows."""
    with open_store(db) as store, store.session() as s:
        c = s.exec(select(Campaign).where(Campaign.name == NAME)).one()
        paid = s.exec(select(LedgerEntry).where(LedgerEntry.campaign_id == c.id,
                                                LedgerEntry.state.in_(["sent", "confirmed"]))).all()
        kinds = {k: sum((e.amount for e in paid if e.kind == k), Decimal("0.00")) for k in ("reward", "bonus", "fee")}
        items = len(s.exec(select(Item.id).where(Item.campaign_id == c.id)).all())
        stage = s.exec(select(Stage).where(Stage.campaign_id == c.id)).one()
        times = s.exec(select(Assignment.accepted_at, Assignment.submitted_at)
                       .where(Assignment.stage_id == stage.id)).all()
        median = statistics.median((b - a).total_seconds() for a, b in times if a and b and b > a)
        return {"kinds": kinds, "spent": sum(kinds.values()), "cap": c.budget_cap, "items": items,
                "wage": (stage.reward * 3600 / Decimal(str(median))).quantize(Decimal("0.01")),
                "stage": stage.name}


def test_costs_piped_shows_forecast_budget_left_cost_per_item_and_wage(finished):
    db, _ = finished
    f = _figures(db)
    assert f["kinds"]["bonus"] > 0 and f["cap"] is not None  # every figure has something to show
    r = crowd("costs", NAME, db=db)
    assert r.returncode == 0, r.stderr
    text = r.stdout
    spent, left = f["spent"], f["cap"] - f["spent"]  # a finished campaign commits nothing more
    assert f"{NAME}: spent {spent} USD (rewards {f['kinds']['reward']}, bonuses {f['kinds']['bonus']}, " \
           f"fees {f['kinds']['fee']})" in text
    assert f"forecast {spent} USD" in text
    assert f"budget cap {f['cap']} USD, budget left {left} USD" in text
    assert f"cost per item {(spent / f['items']).quantize(Decimal('0.0001'))} USD ({f['items']} items)" in text
    assert f"stage {f['stage']}: effective hourly wage {f['wage']} USD/h" in text
    assert all(len(line) < 400 for line in text.splitlines())  # labelled lines, not a 100 000-column pad


def test_costs_plot_writes_spend_over_marketplace_time_per_stage(finished, tmp_path):
    pytest.importorskip("matplotlib")
    db, _ = finished
    png = tmp_path / "spend.png"
    r = crowd("costs", NAME, "--plot", str(png), db=db)
    assert r.returncode == 0, r.stderr
    assert f"wrote {png}" in r.stdout.splitlines()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(crowd("costs", NAME, "--plot", str(png), "--json", db=db).stdout)["plot"]
    series = data["series"][0]
    f = _figures(db)
    assert Decimal(series["total"][-1][1]) == f["spent"]
    assert Decimal(series["stages"][f["stage"]][-1][1]) == f["spent"]  # one stage: it holds all the spend
    hours = [h for h, _ in series["total"]]
    assert hours == sorted(hours)
    with open_store(db) as store, store.session() as s:
        c = s.exec(select(Campaign).where(Campaign.name == NAME)).one()
        stage_ids = s.exec(select(Stage.id).where(Stage.campaign_id == c.id)).all()
        rows = s.exec(select(Assignment.accepted_at, Assignment.submitted_at)
                      .where(Assignment.stage_id.in_(stage_ids))).all()
    span = (max(b for _, b in rows) - min(a for a, _ in rows)).total_seconds() / 3600
    # the marketplace's (simulated) hours, not wall-clock fractions of a second
    assert hours[-1] == pytest.approx(span) and span > 0.05


def test_aggregate_glad_says_what_it_fits(tmp_path):
    answers = tmp_path / "answers.csv"
    with answers.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["task", "worker", "label"])
        for t in range(6):
            for k in range(3):
                w.writerow([f"t{t}", f"w{k}", "a" if (t + k) % 3 else "b"])
    r = crowd("aggregate", str(answers), "--method", "glad", "--out", str(tmp_path / "out.csv"))
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == "glad: fitting 18 answers on 6 tasks by 3 workers (up to 100 iterations)"
    assert lines[1].startswith("glad: fitted 6 tasks in ")
    assert Path(tmp_path / "out.csv").is_file()
