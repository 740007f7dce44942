"""``crowd costs --json`` against a hand computation from the marketplace's own records, and
against the marketplace's balance change, for both fee schedules: MTurk's 10-assignment rule and
minimum fees, Toloka's 30% rounded to $0.001 with its minimum; bonuses included (wage top-up)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from test_costs_support import hand_fee, launch_spec, market_record, oracle_for, run_to_done, write_campaign
from typer.testing import CliRunner

from campaigns.cli import app
from campaigns.money.reconcile import reconcile
from campaigns.store.database import open_store
from connectors.local import start_local

CASES = {  # provider: (reward on 10-assignment pages, minimum-ish reward with top-ups, top-up wage)
    "mturk": ("0.05", "0.01", "3.00"),
    "toloka": ("0.667", "0.005", "1.00"),
}


@pytest.mark.parametrize("provider", sorted(CASES))
def test_costs_json_equals_hand_computation_and_balance_change(provider, tmp_path):
    big_reward, small_reward, wage = CASES[provider]
    url = f"sqlite:///{tmp_path / 'crowd.db'}"
    store = open_store(url)
    with start_local(provider, workers=12, seed=3, oracle=oracle_for(2)) as mp:
        before = mp.balance()
        big, _ = write_campaign(tmp_path, "big", provider, overlap=10, reward=big_reward)
        small, _ = write_campaign(
            tmp_path,
            "small",
            provider,
            overlap=3,
            reward=small_reward,
            extra={"pricing": {"hourly_wage": wage, "wage_topup": True, "topup_after": 1}},
        )
        launch_spec(store, big, mp.url)
        launch_spec(store, small, mp.url)
        run_to_done(store, mp, ["big", "small"])
        spent_on_market = before - mp.balance()
        record = market_record(mp)
        checks = {name: reconcile(store, name, endpoint=mp.url) for name in ("big", "small")}
        cli_check = CliRunner().invoke(
            app, ["reconcile", "small", "--db", url, "--endpoint", mp.url, "--json"]
        )
    assert cli_check.exit_code == 0, cli_check.output
    assert json.loads(cli_check.stdout)["ok"] is True

    # Hand computation from what the marketplace recorded.
    assert {n for _, _, n in record.approved} == {10, 3}, "both page sizes must have approved work"
    assert record.bonuses, "the wage top-up policy must have paid bonuses"
    rewards = sum((r for _, r, _ in record.approved), Decimal(0))
    bonuses = sum((b for _, b in record.bonuses), Decimal(0))
    fees = sum((hand_fee(provider, r, n) for _, r, n in record.approved), Decimal(0)) + sum(
        (hand_fee(provider, b) for _, b in record.bonuses), Decimal(0)
    )
    small_fee = hand_fee(provider, Decimal(small_reward), 3)
    assert small_fee > Decimal(small_reward) * Decimal("0.2"), "the minimum fee rule must be exercised"

    result = CliRunner().invoke(app, ["costs", "--db", url, "--json", "--by", "provider"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (row,) = data["rows"]
    assert (Decimal(row["rewards"]), Decimal(row["bonuses"]), Decimal(row["fees"])) == (
        rewards,
        bonuses,
        fees,
    )
    assert Decimal(row["spent"]) == rewards + bonuses + fees == spent_on_market
    total = sum((Decimal(c["spent"]["total"]) for c in data["campaigns"]), Decimal(0))
    assert total == spent_on_market
    for c in data["campaigns"]:
        assert Decimal(c["committed"]) == 0 and Decimal(c["forecast_total"]) == Decimal(c["spent"]["total"])
        assert c["labels"] > 0 and Decimal(c["cost_per_label"]) > 0
        assert c["stages"][0]["effective_hourly_wage"] is not None
    for name, report in checks.items():
        assert report.ok and not report.differences, (name, report.summary_line())
