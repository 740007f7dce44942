from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from payouts.report import LedgerRecord, cost_report, total


def rec(kind, amount, state, campaign="c1", stage="pairwise", provider="mturk", worker="w1", day=1):
    return LedgerRecord(kind=kind, amount=D(amount), state=state, campaign=campaign, stage=stage,
                        provider=provider, worker=worker, created_at=datetime(2024, 5, day, 12, tzinfo=UTC))


RECORDS = [
    rec("reward", "0.50", "confirmed"), rec("fee", "0.10", "confirmed"),
    rec("reward", "0.50", "sent", worker="w2"), rec("fee", "0.10", "sent", worker="w2"),
    rec("bonus", "0.25", "planned", worker="w2", day=2), rec("fee", "0.05", "planned", worker="w2", day=2),
    rec("bonus", "1.00", "failed", worker="w3", day=2),
    rec("reward", "0.035", "confirmed", campaign="c2", stage="find", provider="toloka", worker="t1"),
]


def test_group_by_campaign_splits_spent_committed_failed():
    rows = {r.group["campaign"]: r for r in cost_report(RECORDS)}
    c1 = rows["c1"]
    assert (c1.spent, c1.committed, c1.failed) == (D("1.20"), D("0.30"), D("1.00"))
    assert (c1.rewards, c1.bonuses, c1.fees) == (D("1.00"), D("0"), D("0.20"))
    assert c1.entries == 7
    assert rows["c2"].spent == D("0.035")


def test_group_by_several_fields_and_day():
    rows = cost_report(RECORDS, by=("campaign", "day"))
    assert [r.group for r in rows] == [
        {"campaign": "c1", "day": "2024-05-01"}, {"campaign": "c1", "day": "2024-05-02"},
        {"campaign": "c2", "day": "2024-05-01"}]
    assert rows[1].committed == D("0.30") and rows[1].spent == 0
    by_worker = {r.group["worker"]: r for r in cost_report(RECORDS, by=("worker",))}
    assert by_worker["w2"].spent == D("0.60") and by_worker["w2"].committed == D("0.30")


def test_totals_match_whatever_the_grouping():
    grand = cost_report(RECORDS, by=())
    assert len(grand) == 1
    for by in (("campaign",), ("provider", "stage"), ("worker", "day")):
        t = total(cost_report(RECORDS, by=by))
        assert (t.spent, t.committed, t.failed, t.entries) == (
            grand[0].spent, grand[0].committed, grand[0].failed, grand[0].entries)
    assert grand[0].spent == D("1.235")


def test_empty_and_bad_grouping():
    assert cost_report([], by=())[0].spent == 0
    assert cost_report([]) == []
    with pytest.raises(ValueError, match="cannot group by colour"):
        cost_report(RECORDS, by=("colour",))


def test_ledger_record_reads_orm_like_objects():
    class Row:  # what an ORM row looks like: attributes, extra columns ignored
        kind, amount, state, campaign, stage = "fee", D("0.01"), "sent", "c", None
        provider, worker = "mturk", None
        created_at, idempotency_key = datetime(2024, 1, 1, tzinfo=UTC), "k"

    r = LedgerRecord.model_validate(Row(), from_attributes=True)
    assert r.amount == D("0.01") and cost_report([r], by=("stage",))[0].group == {"stage": ""}
