"""Helpers for the cost / payout tests: a small real campaign on a local marketplace, and the
marketplace's own records (approvals, bonuses) read from its server state, not from our store.

The hand computation of fees lives here once (``hand_fee``), written from the issue's words,
not from ``payouts.fees``: MTurk 20% (+20% on HITs with 10 or more assignments), at least
$0.01, to the cent; Toloka 30%, at least $0.001, to $0.001. Half-up rounding in both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import yaml

from campaigns.demo.oracles import EXAMPLES, _load_truth, pairwise_oracle
from campaigns.engine.launch import launch
from campaigns.engine.poll import poll
from campaigns.spec.loading import load_spec
from campaigns.store.database import Store

STEP_S = 1800


def hand_fee(provider: str, amount: Decimal, assignments: int = 1) -> Decimal:
    """The fee on one assignment's reward (``assignments`` = the page's count) or one bonus (1)."""
    if provider == "mturk":
        rate = Decimal("0.40") if assignments >= 10 else Decimal("0.20")
        return max(Decimal("0.01"), (amount * rate).quantize(Decimal("0.01"), ROUND_HALF_UP))
    return max(Decimal("0.001"), (amount * Decimal("0.30")).quantize(Decimal("0.001"), ROUND_HALF_UP))


def test_hand_fee_matches_the_issue_text():
    assert hand_fee("mturk", Decimal("0.05"), 9) == Decimal("0.01")
    assert hand_fee("mturk", Decimal("0.05"), 10) == Decimal("0.02")
    assert hand_fee("mturk", Decimal("0.01")) == Decimal("0.01")  # the minimum, not 0.002
    assert hand_fee("toloka", Decimal("0.667")) == Decimal("0.200")  # not 0.2001
    assert hand_fee("toloka", Decimal("0.002")) == Decimal("0.001")


def example_items(n: int) -> tuple[list[dict], dict[str, float]]:
    lines = (EXAMPLES / "pairwise" / "items.jsonl").read_text(encoding="utf-8").splitlines()
    items = [json.loads(x) for x in lines if x.strip()][:n]
    _, by_text = _load_truth(EXAMPLES / "pairwise", items)
    return items, by_text


def oracle_for(n_items: int):
    return pairwise_oracle(example_items(n_items)[1])


def write_campaign(
    tmp_path: Path,
    name: str,
    provider: str,
    *,
    n_items: int = 2,
    page_size: int = 3,
    overlap: int = 3,
    reward: str | None = "0.01",
    extra: dict | None = None,
) -> tuple[Path, str]:
    """A pairwise spec (+ items) in ``tmp_path``; returns (spec path, spec text)."""
    items, _ = example_items(n_items)
    d = tmp_path / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    spec: dict = {
        "name": name,
        "provider": provider,
        "kind": "pairwise",
        "items": "items.jsonl",
        "settings": {"allow_tie": True, "criteria": [], "full_design_max": 4},
        "page_size": page_size,
        "overlap": {"min": overlap},
        "pricing": {"reward": reward} if reward else {},
        "review": {"reject_invalid": True, "block_below_trust": None},
    }
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    text = yaml.safe_dump(spec, sort_keys=False)
    (d / "spec.yaml").write_text(text, encoding="utf-8")
    return d / "spec.yaml", text


def launch_spec(store: Store, spec_path: Path, endpoint: str):
    return launch(
        load_spec(spec_path), store, spec_text=spec_path.read_text(encoding="utf-8"), endpoint=endpoint
    )


def run_to_done(store: Store, mp, names: list[str], max_polls: int = 200) -> int:
    """Let the crowd work and poll every campaign until all are done; returns the polls made."""
    for n in range(1, max_polls + 1):
        mp.advance(STEP_S)
        if all([poll(store, name, endpoint=mp.url).all_done for name in names]):
            return n
    raise AssertionError(f"campaigns {names} not done after {max_polls} polls")


@dataclass
class MarketRecord:
    approved: list[tuple[str, Decimal, int]]  # (assignment id, reward, assignments on its page)
    bonuses: list[tuple[str, Decimal]]  # (assignment id, amount)


def market_record(mp) -> MarketRecord:
    """What the local marketplace itself recorded, read from its server state."""
    server = mp.server
    if mp.provider == "mturk":
        approved = []
        for hit in server.hits.values():
            for aid in hit.assignment_ids:
                a = server.assignments[aid]
                if a.status == "Approved":
                    approved.append((aid, hit.hit_type.reward, hit.max_assignments))
        return MarketRecord(approved, [(b.assignment_id, b.amount) for b in server.bonuses])
    if mp.provider == "prolific":  # a submission holds one page's work; its bonuses are paid rows
        st = server.state
        approved = [(s.id, Decimal(st.studies[s.study_id]["reward"]) / 100, 1)
                    for s in st.submissions.values() if s.status == "APPROVED"]
        return MarketRecord(approved, [(s.id, Decimal(c) / 100) for s in st.submissions.values()
                                       for c in s.bonus_payments])
    st = server.state
    approved = []
    for a in st.store["assignments"].values():
        if a["status"] == "ACCEPTED":
            suite = st.store["task-suites"][a["task_suite_id"]]
            approved.append((a["id"], Decimal(str(a["reward"])), int(suite.get("overlap") or 1)))
    return MarketRecord(
        approved, [(b["assignment_id"], Decimal(str(b["amount"]))) for b in st.store["user-bonuses"].values()]
    )
