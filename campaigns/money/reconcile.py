"""``crowd reconcile``: compare a campaign's ledger with what the marketplace itself recorded,
report every difference, and with ``repair`` make the ledger match the marketplace.

The marketplace is the truth for money that left: its bonus list (MTurk ListBonusPayments per
HIT, Toloka user bonuses) and its approved assignments (a full fetch from no cursor). Repairs
only ever move the ledger towards it:
- a bonus paid on the marketplace but ``planned``/``failed`` here -> ``confirmed`` (with its fee);
- a bonus on the marketplace the ledger never planned -> a new ``confirmed`` entry (and fee);
- a bonus ``confirmed`` here that the marketplace does not have -> ``planned`` again, so the
  next poll pays it with the same idempotency key;
- an approval on the marketplace without a reward entry -> reward + fee entries (the keys
  ``review`` uses, so a later review books nothing twice);
- a reward entry for an assignment the marketplace did not approve -> ``failed``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from sqlmodel import select

from campaigns.errors import CrowdError
from campaigns.money.bonuses import fee_key
from campaigns.money.fees import adopt_fee_rates
from campaigns.store import keys
from campaigns.store.connect import connector_for
from campaigns.store.database import Store
from campaigns.store.models import Assignment, Campaign, LedgerEntry, Page, Publication, Stage, utcnow
from connectors.base import BatchRef, Connector
from payouts.fees import fee_schedule

PAID = ("sent", "confirmed")


@dataclass
class Difference:
    kind: str  # bonus_unconfirmed | bonus_unrecorded | bonus_missing_on_provider | reward_unrecorded |
    #            reward_without_approval | foreign_assignment
    assignment_id: str
    worker_id: str | None
    amount: Decimal
    ledger_key: str | None
    detail: str
    repaired: bool = False


@dataclass
class ReconcileReport:
    campaign: str
    provider: str
    provider_bonuses: int = 0
    provider_approved: int = 0
    ledger_bonuses: int = 0
    ledger_rewards: int = 0
    pending_bonuses: int = 0  # planned, not yet on the marketplace: the next poll pays them
    ledger_total: Decimal = Decimal("0.00")  # spent per the ledger (after repairs)
    provider_total: Decimal = Decimal("0.00")  # the same, priced from the marketplace's records
    differences: list[Difference] = field(default_factory=list)

    @property
    def open_differences(self) -> int:
        """Differences not repaired, counting totals that disagree with no entry to blame as one."""
        left = sum(not d.repaired for d in self.differences)
        return left + (left == 0 and self.ledger_total != self.provider_total)

    @property
    def ok(self) -> bool:
        return self.open_differences == 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "open_differences": self.open_differences}

    def summary_line(self) -> str:
        fixed = sum(d.repaired for d in self.differences)
        verdict = "in agreement" if self.ok else f"{self.open_differences} difference(s) left"
        if self.ok is False and not any(not d.repaired for d in self.differences):
            verdict += " (the totals disagree though every entry matches)"
        return (
            f"{self.campaign} ({self.provider}): {verdict}; {fixed} repaired; ledger {self.ledger_total} vs "
            f"marketplace {self.provider_total}; {self.provider_approved} approved assignments, "
            f"{self.provider_bonuses} bonuses on the marketplace, {self.pending_bonuses} pending"
        )


def reconcile(
    store: Store,
    campaign: str,
    *,
    repair: bool = False,
    endpoint: str | None = None,
    connector: Connector | None = None,
) -> ReconcileReport:
    with store.session() as s:
        c = s.exec(select(Campaign).where(Campaign.name == campaign)).first()
        if c is None:
            raise CrowdError(f"no campaign named {campaign!r}")
        stages = s.exec(select(Stage).where(Stage.campaign_id == c.id, Stage.batch_ref.is_not(None))).all()
        pubs = s.exec(
            select(Publication.provider_ref, Page.assignments, Page.stage_id)
            .join(Page, Page.id == Publication.page_id)
            .where(Page.stage_id.in_([st.id for st in stages]))
        ).all()
        ledger = s.exec(select(LedgerEntry).where(LedgerEntry.campaign_id == c.id)).all()
    conn = connector or connector_for(c.provider, c.environment, endpoint or c.endpoint_url)
    adopt_fee_rates(conn)
    schedule = fee_schedule(c.provider)
    report = ReconcileReport(campaign=c.name, provider=c.provider)

    # What the marketplace recorded: every assignment's status, and the bonuses on them.
    status: dict[str, tuple[str, str, str]] = {}  # aid -> (status, worker, page ref)
    for st in stages:
        mine = [ref for ref, _, sid in pubs if sid == st.id]
        for a in conn.fetch(BatchRef.model_validate(st.batch_ref), None, mine).assignments:
            status[a.assignment_id] = (a.status, a.worker_id, a.page_ref)
    page_of = {ref: (n, sid) for ref, n, sid in pubs}
    stage_of = {st.id: st for st in stages}
    bonuses = _provider_bonuses(conn, [ref for ref, _, _ in pubs], set(status))

    entries = {e.idempotency_key: e for e in ledger}
    changes: list[tuple[str, str]] = []  # (idempotency key, new state)
    inserts: list[dict[str, Any]] = []
    _match_bonuses(report, c, schedule, entries, bonuses, changes, inserts)
    _match_rewards(report, c, schedule, entries, status, page_of, stage_of, changes, inserts)

    report.provider_bonuses = sum(len(v) for v in bonuses.values())
    report.provider_approved = sum(1 for st, _, _ in status.values() if st == "approved")
    report.provider_total = sum(
        (b + schedule.bonus_fee(b) for v in bonuses.values() for b in v), Decimal("0.00")
    )
    for st, _, ref in status.values():
        if st == "approved":
            n, sid = page_of.get(ref, (None, None))
            if sid is not None:
                reward = stage_of[sid].reward
                report.provider_total += reward + schedule.assignment_fee(reward, n)
    _find_foreign(store, report, stages, pubs)
    if repair and (changes or inserts):
        _apply(store, c.id, changes, inserts)
        # A difference is repaired only if comparing again no longer finds it.
        left = {(d.kind, d.assignment_id) for d in reconcile(store, campaign, connector=conn).differences}
        for d in report.differences:
            d.repaired = (d.kind, d.assignment_id) not in left
    with store.session() as s:
        report.ledger_total = store.ledger_sum(s, c.id, states=PAID)
    return report


def _find_foreign(store: Store, report: ReconcileReport, stages: list[Stage], pubs) -> None:
    """Assignments stored under the campaign's stages on pages it never published (another
    campaign's HITs of an identical HIT type, ingested before fetches were scoped to a campaign's
    own pages). Reported, never repaired by hand-waving: the money they moved left the account."""
    ours = {(sid, ref) for ref, _, sid in pubs}
    with store.session() as s:
        rows = s.exec(select(Assignment).where(Assignment.stage_id.in_([st.id for st in stages]))).all()
    for a in rows:
        if (a.stage_id, a.page_ref) not in ours:
            report.differences.append(Difference(
                "foreign_assignment", a.assignment_id, a.worker_id, Decimal("0.00"), None,
                f"stored under this campaign but on page {a.page_ref}, which it did not publish"))


def _provider_bonuses(conn: Connector, hit_refs: list[str], aids: set[str]) -> dict[str, list[Decimal]]:
    """Bonus amounts per assignment of this campaign, as the marketplace lists them."""
    rows: list[dict[str, Any]] = []
    if conn.provider == "mturk":
        for ref in hit_refs:  # ListBonusPayments per HIT: O(pages) calls
            rows += conn.list_bonuses(hit_id=ref)  # type: ignore[attr-defined]
    elif conn.provider == "prolific":
        for aid in sorted(aids):  # Prolific lists bonuses per submission only: O(assignments) calls
            rows += conn.list_bonuses(assignment_id=aid)
    else:
        rows = conn.list_bonuses()  # type: ignore[attr-defined]
    out: dict[str, list[Decimal]] = defaultdict(list)
    for b in rows:
        if b["assignment_id"] in aids:
            out[b["assignment_id"]].append(Decimal(b["amount"]))
    return out


def _match_bonuses(report, c, schedule, entries, bonuses, changes, inserts) -> None:
    mine: dict[str, list[LedgerEntry]] = defaultdict(list)
    for e in entries.values():
        if e.kind == "bonus":
            mine[e.assignment_id].append(e)
            report.ledger_bonuses += e.state in PAID
    for aid in sorted(set(mine) | set(bonuses)):
        # Paid entries claim the marketplace's bonuses first, then planned, then failed ones.
        rank = {"confirmed": 0, "sent": 0, "planned": 1, "failed": 2}
        ledger = sorted(mine.get(aid, []), key=lambda e: (rank[e.state], e.id))
        left = list(bonuses.get(aid, []))
        for e in ledger:
            if e.amount in left:
                left.remove(e.amount)
                if e.state not in PAID:
                    report.differences.append(
                        Difference(
                            "bonus_unconfirmed",
                            aid,
                            e.worker_id,
                            e.amount,
                            e.idempotency_key,
                            f"paid on the marketplace, {e.state} in the ledger",
                        )
                    )
                    changes += [(e.idempotency_key, "confirmed"), (fee_key(e.idempotency_key), "confirmed")]
            elif e.state in PAID:
                report.differences.append(
                    Difference(
                        "bonus_missing_on_provider",
                        aid,
                        e.worker_id,
                        e.amount,
                        e.idempotency_key,
                        "confirmed in the ledger, not on the marketplace; repair queues it for the next poll",
                    )
                )
                changes += [(e.idempotency_key, "planned"), (fee_key(e.idempotency_key), "planned")]
            elif e.state == "planned":
                report.pending_bonuses += 1
        worker = ledger[0].worker_id if ledger else None
        for i, amount in enumerate(left):
            key = f"bonus:{c.provider}:external:{aid}:{i}"
            report.differences.append(
                Difference(
                    "bonus_unrecorded", aid, worker, amount, key, "on the marketplace, not in the ledger"
                )
            )
            inserts += _found_pair(c, None, worker, aid, ("bonus", key, amount),
                                   (fee_key(key), schedule.bonus_fee(amount)))


def _match_rewards(report, c, schedule, entries, status, page_of, stage_of, changes, inserts) -> None:
    for e in entries.values():
        if e.kind != "reward":
            continue
        report.ledger_rewards += e.state in PAID
        on_market = status.get(e.assignment_id, ("missing",))[0]
        if e.state in PAID and on_market != "approved":
            detail = f"rewarded in the ledger, {on_market} on the marketplace"
            report.differences.append(
                Difference("reward_without_approval", e.assignment_id, e.worker_id, e.amount,
                           e.idempotency_key, detail)
            )
            fee = keys.ledger_key("fee", c.provider, e.assignment_id)
            changes += [(e.idempotency_key, "failed"), (fee, "failed")]
    for aid, (st, worker, ref) in sorted(status.items()):
        key = keys.ledger_key("reward", c.provider, aid)
        if st != "approved" or (key in entries and entries[key].state in PAID):
            continue
        n, sid = page_of.get(ref, (None, None))
        if sid is None:
            continue  # not a page of this campaign
        reward = stage_of[sid].reward
        report.differences.append(
            Difference(
                "reward_unrecorded",
                aid,
                worker,
                reward,
                key,
                "approved on the marketplace, no reward in the ledger",
            )
        )
        if key in entries:
            changes += [(key, "confirmed"), (keys.ledger_key("fee", c.provider, aid), "confirmed")]
            continue
        inserts += _found_pair(c, sid, worker, aid, ("reward", key, reward),
                               (keys.ledger_key("fee", c.provider, aid), schedule.assignment_fee(reward, n)))


def _found_pair(c, stage_id, worker, aid, entry: tuple[str, str, Decimal], fee: tuple[str, Decimal]
                ) -> list[dict[str, Any]]:
    """Ledger rows for money the marketplace moved that the ledger never recorded: the entry
    (kind, key, amount) and its fee (key, amount), both confirmed."""
    row = dict(campaign_id=c.id, stage_id=stage_id, provider=c.provider, worker_id=worker, assignment_id=aid,
               state="confirmed", reason="found by reconcile")
    kind, key, amount = entry
    return [dict(row, idempotency_key=key, kind=kind, amount=amount),
            dict(row, idempotency_key=fee[0], kind="fee", amount=fee[1])]


def _apply(store: Store, campaign_id: int, changes: list[tuple[str, str]], inserts: list[dict[str, Any]]) -> None:
    now = utcnow()
    with store.write() as s:
        store.lock_campaign(s, campaign_id)  # budget checks must not see a repair half done (bonuses._settle)
        wanted = dict(changes)
        for row in s.exec(select(LedgerEntry).where(LedgerEntry.idempotency_key.in_(list(wanted)))).all():
            row.state, row.updated_at = wanted[row.idempotency_key], now
            s.add(row)
        store.insert_ignore(
            s, LedgerEntry, [dict(r, created_at=now, updated_at=now) for r in inserts], ["idempotency_key"]
        )
