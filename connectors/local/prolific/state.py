"""What the local Prolific server holds: one workspace and its balance, studies, submissions,
participant groups and bulk bonuses, with Prolific's state machines and money rules.

Study: UNPUBLISHED -PUBLISH-> ACTIVE -PAUSE-> PAUSED -START-> ACTIVE; ACTIVE|PAUSED -STOP->
COMPLETED. An active study whose places are all held shows AWAITING REVIEW while any submission
awaits review; raising the places of a full or stopped study makes it ACTIVE again. Places only go up.

Submission: ACTIVE -COMPLETE (researcher code)-> AWAITING REVIEW -APPROVE-> APPROVED, -REJECT->
REJECTED (a category and a message of 100 characters or more); ACTIVE -> RETURNED (the participant
leaves) or TIMED-OUT (past ``maximum_allowed_time``). Returned, timed-out and rejected submissions
give their place back. A repeated transition to the state a submission is in is a no-op.

Money is integer cents. Approval charges the reward plus the fee; a bonus pay charges its total
*every time it is called* (Prolific's pay is not idempotent, and neither is this one). The fee
is ``FEE_RATE`` of the amount, VAT ``VAT_SHARE`` of the fee, each rounded half-up to the cent once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

FEE_RATE = Decimal("0.36")  # service fee plus VAT, of the amount paid to participants
VAT_SHARE = Decimal("0.2") / Decimal("1.2")  # the VAT part of that fee (20% VAT on a 30% fee)
MIN_REWARD_PER_HOUR = {"USD": 800, "GBP": 600}  # cents (pence) per hour
HOLDING = {"ACTIVE", "RESERVED", "AWAITING REVIEW", "APPROVED", "PARTIALLY APPROVED"}
REJECTION_CATEGORIES = {"TOO_QUICKLY", "TOO_SLOWLY", "FAILED_INSTRUCTIONS", "INCOMP_LONGITUDINAL", "FAILED_CHECK",
                        "LOW_EFFORT", "MALINGERING", "NO_CODE", "BAD_CODE", "NO_DATA", "UNSUPP_DEVICE", "OTHER"}


class ProlificError(Exception):
    """Answered as Prolific's error body: ``{"error": {"status", "error_code", "title", "detail"}}``."""

    def __init__(self, status: int, title: str, detail: Any, error_code: int = 140100):
        super().__init__(str(detail))
        self.status, self.title, self.detail, self.error_code = status, title, detail, error_code

    def body(self) -> dict:
        return {"error": {"status": self.status, "error_code": self.error_code, "title": self.title,
                          "detail": self.detail}}


def new_id() -> str:
    return secrets.token_hex(12)  # Prolific ids are 24 hex digits; unique per server start


def iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


def fee_of(cents: int) -> tuple[int, int]:
    """(fee without VAT, VAT) on an amount, rounded once each way so they add to the total fee."""
    total = int((Decimal(cents) * FEE_RATE).quantize(Decimal(1), ROUND_HALF_UP))
    vat = int((Decimal(total) * VAT_SHARE).quantize(Decimal(1), ROUND_HALF_UP))
    return total - vat, vat


@dataclass
class Submission:
    id: str
    study_id: str
    participant: str
    started_at: datetime
    status: str = "ACTIVE"
    completed_at: datetime | None = None
    entered_code: str | None = None
    bonus_payments: list[int] = field(default_factory=list)

    def short(self) -> dict:
        return {"id": self.id, "participant_id": self.participant, "status": self.status,
                "started_at": iso(self.started_at), "completed_at": iso(self.completed_at), "has_siblings": False,
                "study_code": self.entered_code, "return_requested": None}

    def detail(self) -> dict:
        return {"id": self.id, "completed_at": iso(self.completed_at), "entered_code": self.entered_code,
                "participant": self.participant, "started_at": iso(self.started_at), "status": self.status,
                "study_id": self.study_id, "parent_study_id": None,
                "bonus_payments": [float(c) for c in self.bonus_payments], "return_requested": None}

    def plain(self) -> dict:
        return {"id": self.id, "completed_at": iso(self.completed_at), "entered_code": self.entered_code,
                "participant": self.participant, "started_at": iso(self.started_at), "status": self.status,
                "study_id": self.study_id}


class ProlificState:
    def __init__(self, balance_cents: int, currency: str = "USD"):
        self.workspace = {"id": new_id(), "title": "Local workspace", "description": "crowdbridge's local Prolific",
                          "owner": new_id(), "users": [], "naivety_distribution_rate": None}
        self.currency = currency
        self.funded = balance_cents
        self.charged = 0  # cents taken from the balance: rewards, bonuses, fees and VAT
        self.studies: dict[str, dict] = {}
        self.submissions: dict[str, Submission] = {}
        self.by_study: dict[str, list[str]] = {}
        self.groups: dict[str, dict] = {}
        self.members: dict[str, dict[str, datetime]] = {}
        self.bulks: dict[str, dict] = {}
        self.pays: list[tuple[str, int]] = []  # (bulk id, cents charged) for every pay call

    # ----------------------------------------------------------------- money
    def charge(self, cents: int) -> tuple[int, int, int]:
        fee, vat = fee_of(cents)
        self.charged += cents + fee + vat
        return cents, fee, vat

    def balance(self) -> dict:
        total = self.funded - self.charged
        return {"currency_code": self.currency, "total_balance": total,
                "balance_breakdown": {"rewards": total, "fees": 0, "vat": 0},
                "available_balance": total, "available_balance_breakdown": {"rewards": total, "fees": 0, "vat": 0}}

    def cost(self, reward: int, places: int) -> int:
        fee, vat = fee_of(reward)
        return (reward + fee + vat) * places

    # ----------------------------------------------------------------- studies
    def create_study(self, body: dict, now: datetime) -> dict:
        if body.get("reward", 0) <= 0 or body.get("total_available_places", 0) < 0:
            raise ProlificError(400, "Invalid study", {"reward": ["The reward must be positive."]})
        study = dict(body)
        study.update(id=new_id(), status="UNPUBLISHED", date_created=iso(now), is_ready_to_publish=True,
                     total_available_places=int(body["total_available_places"]), reward=int(body["reward"]))
        study.setdefault("internal_name", None)
        study.setdefault("submissions_config", {"max_submissions_per_participant": 1})
        study.setdefault("filters", [])
        study.setdefault("maximum_allowed_time", max(1, int(body["estimated_completion_time"]) * 3))
        self.studies[study["id"]] = study
        self.by_study[study["id"]] = []
        return self.study_out(study)

    def study(self, study_id: str) -> dict:
        study = self.studies.get(study_id)
        if study is None:
            raise ProlificError(404, "Not found", "No study with this id.")
        return study

    def study_out(self, study: dict) -> dict:
        out = {k: v for k, v in study.items() if not k.startswith("_")}
        out["status"] = self.study_status(study)
        out["places_taken"] = self.holding(study["id"])
        return out

    def study_short(self, study: dict) -> dict:
        return {"id": study["id"], "name": study["name"], "internal_name": study.get("internal_name"),
                "status": self.study_status(study), "total_available_places": study["total_available_places"],
                "places_taken": self.holding(study["id"]), "reward": study["reward"],
                "estimated_completion_time": study["estimated_completion_time"], "date_created": study["date_created"]}

    def holding(self, study_id: str) -> int:
        return sum(self.submissions[s].status in HOLDING for s in self.by_study.get(study_id, []))

    def study_status(self, study: dict) -> str:
        status = study["status"]
        if status == "ACTIVE" and self.holding(study["id"]) >= study["total_available_places"]:
            waiting = any(self.submissions[s].status in ("AWAITING REVIEW", "ACTIVE")
                          for s in self.by_study[study["id"]])
            return "AWAITING REVIEW" if waiting else "COMPLETED"
        return status

    def update_study(self, study_id: str, body: dict) -> dict:
        study = self.study(study_id)
        if study["status"] == "UNPUBLISHED":
            study.update(body)
            return self.study_out(study)
        allowed = {"internal_name", "total_available_places", "submissions_config"}
        bad = sorted(set(body) - allowed)
        if bad:
            raise ProlificError(400, "Invalid update", {bad[0]: ["This field cannot be changed on a published study."]})
        if "total_available_places" in body:
            places = int(body["total_available_places"])
            if places < study["total_available_places"]:
                raise ProlificError(400, "Invalid update",
                                    {"total_available_places": ["Places can only be increased."]})
            if places > study["total_available_places"] and study["status"] == "COMPLETED":
                study["status"] = "ACTIVE"  # more places start a completed study again
            study["total_available_places"] = places
        for k in ("internal_name", "submissions_config"):
            if k in body:
                study[k] = body[k]
        return self.study_out(study)

    def transition_study(self, study_id: str, action: str) -> dict:
        study = self.study(study_id)
        moves = {("UNPUBLISHED", "PUBLISH"): "ACTIVE", ("ACTIVE", "PAUSE"): "PAUSED", ("PAUSED", "START"): "ACTIVE",
                 ("ACTIVE", "STOP"): "COMPLETED", ("PAUSED", "STOP"): "COMPLETED"}
        target = moves.get((study["status"], action))
        if target is None:
            raise ProlificError(400, "Invalid transition", f"A study that is {study['status']} cannot {action}.")
        if action == "PUBLISH":
            need = self.cost(study["reward"], study["total_available_places"])
            if need > self.funded - self.charged:
                raise ProlificError(400, "Insufficient funds", "Your workspace balance cannot cover this study.")
        study["status"] = target
        return self.study_out(study)

    # ----------------------------------------------------------------- participants (simulated)
    def eligible(self, study: dict, participant: str) -> bool:
        for f in study.get("filters") or []:
            inside = any(participant in self.members.get(g, {}) for g in f.get("selected_values", []))
            if f.get("filter_id") == "participant_group_allowlist" and not inside:
                return False
            if f.get("filter_id") == "participant_group_blocklist" and inside:
                return False
        return True

    def open_to(self, participant: str) -> list[str]:
        """Studies this participant could start now: active, a place free, filters met, allowed again."""
        out = []
        for study in self.studies.values():
            if self.study_status(study) != "ACTIVE" or not self.eligible(study, participant):
                continue
            subs = (self.submissions[s] for s in self.by_study[study["id"]])
            mine = [s for s in subs if s.participant == participant]
            limit = (study.get("submissions_config") or {}).get("max_submissions_per_participant") or 1
            if any(s.status in ("ACTIVE", "RESERVED") for s in mine) or (limit != -1 and len(mine) >= limit):
                continue
            out.append(study["id"])
        return out

    def start(self, study_id: str, participant: str, now: datetime) -> Submission | None:
        if study_id not in self.open_to(participant):
            return None
        sub = Submission(id=new_id(), study_id=study_id, participant=participant, started_at=now)
        self.submissions[sub.id] = sub
        self.by_study[study_id].append(sub.id)
        return sub

    def leave(self, submission_id: str) -> None:
        sub = self.submissions.get(submission_id)
        if sub is not None and sub.status == "ACTIVE":
            sub.status = "RETURNED"

    def time_out(self, now: datetime) -> None:
        for sub in self.submissions.values():
            if sub.status == "ACTIVE":
                limit = self.studies[sub.study_id].get("maximum_allowed_time") or 60
                if sub.started_at + timedelta(minutes=float(limit)) <= now:
                    sub.status = "TIMED-OUT"

    def external_url(self, study_id: str, sub: Submission) -> str:
        url = self.studies[study_id]["external_study_url"]
        for k, v in (("PROLIFIC_PID", sub.participant), ("STUDY_ID", study_id), ("SESSION_ID", sub.id)):
            url = url.replace("{{%" + k + "%}}", v)
        return url

    # ----------------------------------------------------------------- submissions
    def submission(self, submission_id: str) -> Submission:
        sub = self.submissions.get(submission_id)
        if sub is None:
            raise ProlificError(404, "Not found", "No submission with this id.")
        return sub

    def list_submissions(self, study_id: str, status: str | None) -> list[Submission]:
        self.study(study_id)
        subs = [self.submissions[s] for s in self.by_study[study_id]]
        if status:
            want = status.upper().replace("_", " ").replace("TIMED OUT", "TIMED-OUT")
            subs = [s for s in subs if s.status == want]
        return subs

    def transition(self, submission_id: str, body: dict, now: datetime) -> Submission:
        sub = self.submission(submission_id)
        action = body["action"]
        target = {"APPROVE": "APPROVED", "REJECT": "REJECTED", "COMPLETE": "AWAITING REVIEW"}.get(action)
        if target is None:
            raise ProlificError(400, "Invalid transition", f"The local server does not carry out {action}.")
        if sub.status == target:
            return sub  # "if you make the same request twice, the second request will be ignored"
        if action == "COMPLETE":
            codes = [c for c in self.studies[sub.study_id].get("completion_codes") or []
                     if c.get("actor") == "researcher"]
            if sub.status != "ACTIVE":
                raise ProlificError(400, "Invalid transition", f"The submission is {sub.status}, not ACTIVE.")
            if body.get("completion_code") not in {c.get("code") for c in codes}:
                raise ProlificError(400, "Invalid completion code", "This completion code is not one of the study's "
                                    "researcher codes.")
            sub.status, sub.completed_at, sub.entered_code = target, now, body["completion_code"]
            return sub
        if sub.status != "AWAITING REVIEW":
            raise ProlificError(400, "Invalid transition", f"The submission is {sub.status}, not AWAITING REVIEW.")
        if action == "REJECT":
            if body.get("rejection_category") not in REJECTION_CATEGORIES:
                raise ProlificError(400, "Invalid rejection", {"rejection_category": ["This field is required."]})
            if len(body.get("message") or "") < 100:
                raise ProlificError(400, "Invalid rejection",
                                    {"message": ["Ensure this field has at least 100 characters."]})
        else:
            self.charge(self.studies[sub.study_id]["reward"])
        sub.status = target
        return sub

    def bulk_approve(self, body: dict, now: datetime) -> None:
        if "submission_ids" in body:
            ids = body["submission_ids"]
        else:
            ids = [s.id for s in self.list_submissions(body["study_id"], None)
                   if s.participant in set(body["participant_ids"])]
        unknown = [i for i in ids if i not in self.submissions]
        if unknown:
            raise ProlificError(400, "Invalid submissions", f"Unknown submission ids: {', '.join(unknown[:5])}")
        for i in ids:
            if self.submissions[i].status == "AWAITING REVIEW":
                self.transition(i, {"action": "APPROVE"}, now)

    # ----------------------------------------------------------------- bonuses
    def set_up_bonus(self, body: dict) -> dict:
        study_id = body.get("study_id") or ""
        self.study(study_id)
        rows, bad = [], []
        for line in (body.get("csv_bonuses") or "").strip().splitlines():
            who, _, amount = line.partition(",")
            who = who.strip()
            subs = [s for s in (self.submissions[i] for i in self.by_study[study_id])
                    if who in (s.id, s.participant)]
            try:
                cents = Decimal(amount.strip()) * 100
                ok = cents > 0 and cents == cents.to_integral_value()
            except ArithmeticError:
                ok = False
            if not subs or not ok:
                bad.append(who or line)
                continue
            rows.append((subs[0].id, int(cents)))
        if bad or not rows:
            raise ProlificError(400, "Invalid bonuses", f"These ids did not take part in the study or their amount "
                                f"is not valid: {', '.join(bad) or 'none given'}")
        amount = sum(c for _, c in rows)
        fee, vat = map(sum, zip(*(fee_of(c) for _, c in rows), strict=True))
        bulk = {"id": new_id(), "study": study_id, "amount": float(amount), "fees": float(fee), "vat": float(vat),
                "total_amount": float(amount + fee + vat), "_rows": rows}
        self.bulks[bulk["id"]] = bulk
        return {k: v for k, v in bulk.items() if not k.startswith("_")}

    def pay(self, bulk_id: str) -> None:
        bulk = self.bulks.get(bulk_id)
        if bulk is None:
            raise ProlificError(404, "Not found", "No bulk bonus payment with this id.")
        charged = 0
        for submission_id, cents in bulk["_rows"]:
            self.submissions[submission_id].bonus_payments.append(cents)
            charged += sum(self.charge(cents))
        self.pays.append((bulk_id, charged))

    # ----------------------------------------------------------------- participant groups
    def create_group(self, body: dict, now: datetime) -> dict:
        group = {"id": new_id(), "name": body["name"], "project_id": None,
                 "workspace_id": body.get("workspace_id"), "organisation_id": None,
                 "description": body.get("description"), "participant_count": 0, "is_deleted": False,
                 "feeder_studies": []}
        self.groups[group["id"]] = group
        self.members[group["id"]] = {p: now for p in body.get("participant_ids") or []}
        return self.group_out(group["id"])

    def group_out(self, group_id: str) -> dict:
        group = self.groups.get(group_id)
        if group is None:
            raise ProlificError(404, "Not found", "No participant group with this id.")
        return group | {"participant_count": len(self.members[group_id])}

    def group_members(self, group_id: str) -> dict:
        self.group_out(group_id)
        return {"results": [{"participant_id": p, "datetime_created": iso(t)}
                            for p, t in self.members[group_id].items()]}

    def add_members(self, group_id: str, ids: list[str], now: datetime) -> dict:
        self.group_out(group_id)
        for p in ids:
            self.members[group_id].setdefault(p, now)
        return self.group_members(group_id)

    def remove_members(self, group_id: str, ids: list[str]) -> dict:
        self.group_out(group_id)
        for p in ids:
            self.members[group_id].pop(p, None)
        return self.group_members(group_id)

    def version(self) -> int:
        return hash((tuple((s["id"], s["status"], s["total_available_places"]) for s in self.studies.values()),
                     len(self.submissions), sum(len(m) for m in self.members.values()),
                     sum(s.status in HOLDING for s in self.submissions.values())))
