"""The local MTurk requester service: MTurk's semantics over the model-driven wire layer.

Each ``op_<Operation>`` method holds only what the service *does*; request validation and
response shaping happen once, in ``wire``. The server is also the ``crowd.Market`` the simulated
crowd works on: workers see the Assignable HITs they qualify for (taking a qualification's test
first when they need it), and submit crowd-form answers in MTurk's real formats.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.local.clock import SimClock
from connectors.local.crowd import Crowd, Job, Offer, SimWorker
from connectors.local.faults import FaultConfig
from connectors.local.http import LocalServer, Request, Response
from connectors.local.mturk import questions as q
from connectors.local.mturk import wire
from connectors.local.mturk.state import (
    HIT,
    Assignment,
    Bonus,
    HITType,
    Qualification,
    QualificationType,
    TestAttempt,
    assignment_fee,
    bonus_fee,
    money,
    within,
)
from connectors.local.mturk.wire import MTurkError, invalid

JSON = {"Content-Type": wire.CONTENT_TYPE}
TOKEN_TTL_S = 24 * 3600
OVERRIDE_WINDOW_S = 30 * 24 * 3600
MAX_OFFERS = 20

LOCALE_QT = "00000000000000000071"
# system qualifications every simulated worker holds (value), besides Locale
SYSTEM_QTS = {"000000000000000000L0": 99, "00000000000000000040": 5000, "00000000000000000060": 1}
NUMERIC = {"LessThan", "LessThanOrEqualTo", "GreaterThan", "GreaterThanOrEqualTo", "EqualTo", "NotEqualTo"}


def _compare(comparator: str, value: Any, wanted: list[Any]) -> bool:
    first = wanted[0] if wanted else None
    return {
        "LessThan": lambda: value < first,
        "LessThanOrEqualTo": lambda: value <= first,
        "GreaterThan": lambda: value > first,
        "GreaterThanOrEqualTo": lambda: value >= first,
        "EqualTo": lambda: value == first,
        "NotEqualTo": lambda: value != first,
        "In": lambda: value in wanted,
        "NotIn": lambda: value not in wanted,
    }[comparator]()


def _locale_key(locale: dict[str, str]) -> tuple[str, str | None]:
    return locale["Country"], locale.get("Subdivision")


def _epoch(value: Any) -> datetime:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    try:
        return datetime.fromisoformat(str(value)).astimezone(UTC)
    except ValueError as e:
        raise invalid(f"not a timestamp: {value!r}") from e


class Server(LocalServer):
    provider = "mturk"

    def __init__(
        self,
        clock: SimClock,
        crowd: Crowd,
        faults: FaultConfig | None = None,
        port: int = 0,
        balance: Decimal = Decimal("10000.00"),
    ):
        super().__init__(clock, crowd, faults, port, balance)
        self._balance = money(Decimal(balance))
        self._ids = random.Random(f"mturk-ids:{crowd.seed}")
        self.hit_types: dict[str, HITType] = {}
        self._hit_type_keys: dict[tuple, str] = {}
        self.hits: dict[str, HIT] = {}
        self.assignments: dict[str, Assignment] = {}
        self.qual_types: dict[str, QualificationType] = {}
        self.quals: dict[tuple[str, str], Qualification] = {}
        self.blocks: dict[str, str] = {}
        self.bonuses: list[Bonus] = []
        self.notifications: list[dict[str, Any]] = []
        self._tokens: dict[tuple[str, str], tuple[datetime, str]] = {}
        self._attempts: dict[tuple[str, str], datetime] = {}
        self._forms: dict[str, tuple[str, Any]] = {}
        self._timers: list[tuple[datetime, int, str, str]] = []
        self._seq = itertools.count()
        self._submit_seq = itertools.count(1)
        self._version = 0
        self.ops: dict[str, Callable[[dict[str, Any], datetime], dict[str, Any]]] = {
            name[3:]: getattr(self, name) for name in dir(self) if name.startswith("op_")
        }

    # ----------------------------------------------------------------- HTTP
    def operation(self, request: Request) -> str:
        target = request.headers.get("x-amz-target", "")
        return target.split(".", 1)[1] if "." in target else "unknown"

    def fault_response(self, kind: str, operation: str) -> Response:
        if kind == "throttle":
            err = MTurkError("Rate exceeded", "AWS.MechanicalTurk.Throttled", code="ThrottlingException")
        else:
            err = MTurkError(
                "Service fault (injected)", "AWS.MechanicalTurk.ServiceFault", "ServiceFault", 500
            )
        return Response(err.status, err.body(), dict(JSON))

    def handle(self, request: Request) -> Response:
        try:
            if request.method != "POST":
                raise invalid("the MTurk API takes POST requests only")
            op, params = wire.decode_request(request.headers.get("x-amz-target"), request.body)
            handler = self.ops.get(op)
            if handler is None:
                raise MTurkError(
                    f"{op} is not supported by the local MTurk server",
                    "AWS.MechanicalTurk.UnsupportedOperation",
                )
            now = self.clock.now()
            self.tick(now)
            return Response(200, wire.encode_response(op, handler(params, now)), dict(JSON))
        except MTurkError as e:
            return Response(e.status, e.body(), dict(JSON))
        except Exception as e:  # a server bug: answer as the service would, never a traceback
            err = MTurkError(
                f"internal error: {type(e).__name__}: {e}",
                "AWS.MechanicalTurk.ServiceFault",
                "ServiceFault",
                500,
            )
            return Response(500, err.body(), dict(JSON))

    # ----------------------------------------------------------------- helpers
    def balance(self) -> Decimal:
        return self._balance

    def _new_id(self, lead: str = "3") -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        return lead + "".join(self._ids.choice(alphabet) for _ in range(29))

    def _timer(self, at: datetime, kind: str, ref: str) -> None:
        heapq.heappush(self._timers, (at, next(self._seq), kind, ref))

    def _token(self, scope: str, token: str | None, now: datetime) -> str | None:
        """The ref an unexpired earlier request with this token made, if any."""
        if not token:
            return None
        seen = self._tokens.get((scope, token))
        return seen[1] if seen and within(seen[0], TOKEN_TTL_S, now) else None

    def _remember(self, scope: str, token: str | None, ref: str, now: datetime) -> None:
        if token:
            self._tokens[(scope, token)] = (now, ref)

    def _charge(self, amount: Decimal) -> None:
        if amount > self._balance:
            raise MTurkError(
                "This Requester has insufficient funds in their account to complete this transaction.",
                "AWS.MechanicalTurk.InsufficientFunds",
            )
        self._balance -= amount

    @staticmethod
    def _reward(text: str) -> Decimal:
        try:
            reward = Decimal(text)
        except InvalidOperation as e:
            raise invalid(f"Reward {text!r} is not an amount in dollars") from e
        if reward < Decimal("0.01"):
            raise invalid("Reward must be at least $0.01")
        return money(reward)

    @staticmethod
    def _page(items: list[Any], params: dict[str, Any]) -> tuple[list[Any], str | None]:
        size = params.get("MaxResults") or 10
        start = 0
        if params.get("NextToken"):
            try:
                start = int(
                    base64.urlsafe_b64decode(params["NextToken"].encode()).decode().removeprefix("o:")
                )
            except (ValueError, UnicodeDecodeError) as e:
                raise invalid("NextToken is not valid", "AWS.MechanicalTurk.InvalidNextToken") from e
        chunk = items[start : start + size]
        more = start + size < len(items)
        return chunk, base64.urlsafe_b64encode(f"o:{start + size}".encode()).decode() if more else None

    def _get_hit(self, hit_id: str) -> HIT:
        hit = self.hits.get(hit_id)
        if hit is None:
            raise invalid(f"Hit {hit_id} does not exist.", "AWS.MechanicalTurk.HITDoesNotExist")
        return hit

    def _get_assignment(self, assignment_id: str) -> Assignment:
        a = self.assignments.get(assignment_id)
        if a is None or a.status in ("Accepted", "Abandoned"):
            raise invalid(
                f"Assignment {assignment_id} does not exist.", "AWS.MechanicalTurk.AssignmentDoesNotExist"
            )
        return a

    def _get_qt(self, qt_id: str) -> QualificationType:
        qt = self.qual_types.get(qt_id)
        if qt is None:
            raise invalid(
                f"QualificationType {qt_id} does not exist.",
                "AWS.MechanicalTurk.QualificationTypeDoesNotExist",
            )
        return qt

    # ----------------------------------------------------------------- HIT bookkeeping
    def _counts(self, hit: HIT) -> tuple[int, int, int]:
        pending = completed = 0
        for aid in hit.assignment_ids:
            status = self.assignments[aid].status
            pending += status == "Accepted"
            completed += status in ("Submitted", "Approved", "Rejected")
        return pending, max(0, hit.max_assignments - pending - completed), completed

    def _status(self, hit: HIT, now: datetime) -> str:
        if hit.disposed:
            return "Disposed"
        if hit.reviewing:
            return "Reviewing"
        pending, available, _ = self._counts(hit)
        if now < hit.expiration and available > 0:
            return "Assignable"
        return "Unassignable" if pending else "Reviewable"

    def _hit_out(self, hit: HIT, now: datetime) -> dict[str, Any]:
        pending, available, completed = self._counts(hit)
        t = hit.hit_type
        return {
            "HITId": hit.hit_id,
            "HITTypeId": t.hit_type_id,
            "HITGroupId": t.hit_type_id,
            "CreationTime": hit.created,
            "Title": t.title,
            "Description": t.description,
            "Question": hit.question,
            "Keywords": t.keywords,
            "HITStatus": self._status(hit, now),
            "MaxAssignments": hit.max_assignments,
            "Reward": f"{t.reward:.2f}",
            "AutoApprovalDelayInSeconds": t.auto_approval_delay_s,
            "Expiration": hit.expiration,
            "AssignmentDurationInSeconds": t.assignment_duration_s,
            "RequesterAnnotation": hit.annotation,
            "QualificationRequirements": t.requirements,
            "HITReviewStatus": hit.review_status,
            "NumberOfAssignmentsPending": pending,
            "NumberOfAssignmentsAvailable": available,
            "NumberOfAssignmentsCompleted": completed,
        }

    @staticmethod
    def _assignment_out(a: Assignment) -> dict[str, Any]:
        return {
            "AssignmentId": a.assignment_id,
            "WorkerId": a.worker_id,
            "HITId": a.hit_id,
            "AssignmentStatus": a.status,
            "AutoApprovalTime": a.auto_approval,
            "AcceptTime": a.accepted,
            "SubmitTime": a.submitted,
            "ApprovalTime": a.approved,
            "RejectionTime": a.rejected,
            "Deadline": a.deadline,
            "Answer": a.answer,
            "RequesterFeedback": a.feedback,
        }

    def _approve(self, a: Assignment, now: datetime, feedback: str | None = None) -> None:
        hit = self.hits[a.hit_id]
        reward = hit.hit_type.reward
        self._charge(reward + assignment_fee(reward, hit.max_assignments))
        a.status, a.approved, a.rejected = "Approved", now, None
        if feedback is not None:
            a.feedback = feedback

    # ----------------------------------------------------------------- validation of semantics
    def _check_requirements(self, reqs: list[dict[str, Any]]) -> None:
        for r in reqs:
            qt_id, comp = r["QualificationTypeId"], r["Comparator"]
            ints, locales = r.get("IntegerValues"), r.get("LocaleValues")
            if qt_id != LOCALE_QT and qt_id not in SYSTEM_QTS:
                self._get_qt(qt_id)
            if comp in ("Exists", "DoesNotExist"):
                if ints or locales:
                    raise invalid(f"Comparator {comp} takes no IntegerValues or LocaleValues")
                continue
            if qt_id == LOCALE_QT:
                if not locales or ints or comp not in ("EqualTo", "NotEqualTo", "In", "NotIn"):
                    raise invalid(
                        "The Locale qualification takes LocaleValues with EqualTo, NotEqualTo, In or NotIn"
                    )
            elif not ints or locales:
                raise invalid(f"Comparator {comp} needs IntegerValues for QualificationType {qt_id}")
            values = ints or locales
            if comp in NUMERIC and len(values) != 1:
                raise invalid(f"Comparator {comp} takes exactly one value")

    @staticmethod
    def _check_type_fields(p: dict[str, Any]) -> None:
        if not 30 <= p["AssignmentDurationInSeconds"] <= 31536000:
            raise invalid("AssignmentDurationInSeconds must be between 30 and 31536000")
        if not 0 <= p.get("AutoApprovalDelayInSeconds", 2592000) <= 2592000:
            raise invalid("AutoApprovalDelayInSeconds must be between 0 and 2592000")
        for name, limit in (("Title", 128), ("Description", 2000), ("Keywords", 1000)):
            if len(p.get(name) or "") > limit:
                raise invalid(f"{name} must be at most {limit} characters long")
        if not p["Title"].strip():
            raise invalid("Title must not be empty")

    def _register_type(self, p: dict[str, Any]) -> HITType:
        self._check_type_fields(p)
        reward = self._reward(p["Reward"])
        reqs = p.get("QualificationRequirements") or []
        self._check_requirements(reqs)
        key = (
            p["Title"],
            p["Description"],
            str(reward),
            p["AssignmentDurationInSeconds"],
            p.get("AutoApprovalDelayInSeconds", 2592000),
            p.get("Keywords") or "",
            repr(reqs),
        )
        if key in self._hit_type_keys:  # MTurk answers the existing type for identical properties
            return self.hit_types[self._hit_type_keys[key]]
        t = HITType(
            self._new_id(),
            p["Title"],
            p["Description"],
            reward,
            p["AssignmentDurationInSeconds"],
            p.get("AutoApprovalDelayInSeconds", 2592000),
            p.get("Keywords") or "",
            reqs,
        )
        self.hit_types[t.hit_type_id] = t
        self._hit_type_keys[key] = t.hit_type_id
        return t

    def _create_hit(self, t: HITType, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        token = p.get("UniqueRequestToken")
        existing = self._token("hit", token, now)
        if existing:
            raise invalid(
                f'The HIT with ID "{existing}" already exists (UniqueRequestToken {token} was '
                f"used in the last 24 hours). HITId: {existing}",
                "AWS.MechanicalTurk.HitAlreadyExists",
            )
        for unsupported in (
            "HITLayoutId",
            "HITLayoutParameters",
            "AssignmentReviewPolicy",
            "HITReviewPolicy",
        ):
            if p.get(unsupported):
                raise invalid(f"{unsupported} is not supported by the local MTurk server")
        if not p.get("Question"):
            raise invalid("missing required parameter Question")
        kind = q.check_question(p["Question"])
        max_assignments = p.get("MaxAssignments", 1)
        if not 1 <= max_assignments <= 1_000_000:
            raise invalid("MaxAssignments must be between 1 and 1000000")
        if not 30 <= p["LifetimeInSeconds"] <= 31536000:
            raise invalid("LifetimeInSeconds must be between 30 and 31536000")
        if len(p.get("RequesterAnnotation") or "") > 255:
            raise invalid("RequesterAnnotation must be at most 255 characters long")
        cost = max_assignments * (t.reward + assignment_fee(t.reward, max_assignments))
        if cost > self._balance:
            raise MTurkError(
                "This Requester has insufficient funds in their account to complete this transaction.",
                "AWS.MechanicalTurk.InsufficientFunds",
            )
        hit = HIT(
            self._new_id(),
            t,
            p["Question"],
            now,
            now + timedelta(seconds=p["LifetimeInSeconds"]),
            max_assignments,
            p.get("RequesterAnnotation"),
        )
        self.hits[hit.hit_id] = hit
        self._forms[hit.hit_id] = (kind, None)
        self._remember("hit", token, hit.hit_id, now)
        self._version += 1
        return {"HIT": self._hit_out(hit, now)}

    # ----------------------------------------------------------------- operations: HITs
    def op_CreateHITType(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {"HITTypeId": self._register_type(p).hit_type_id}

    def op_CreateHIT(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        type_fields = (
            "Title",
            "Description",
            "Reward",
            "AssignmentDurationInSeconds",
            "AutoApprovalDelayInSeconds",
            "Keywords",
            "QualificationRequirements",
        )
        return self._create_hit(self._register_type({k: p[k] for k in type_fields if k in p}), p, now)

    def op_CreateHITWithHITType(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        t = self.hit_types.get(p["HITTypeId"])
        if t is None:
            raise invalid(
                f"HITType {p['HITTypeId']} does not exist.", "AWS.MechanicalTurk.HITTypeDoesNotExist"
            )
        return self._create_hit(t, p, now)

    def op_GetHIT(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {"HIT": self._hit_out(self._get_hit(p["HITId"]), now)}

    def op_ListHITs(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        chunk, token = self._page([h for h in self.hits.values() if not h.disposed], p)
        return {"NextToken": token, "NumResults": len(chunk), "HITs": [self._hit_out(h, now) for h in chunk]}

    def op_ListReviewableHITs(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        status = p.get("Status", "Reviewable")
        hits = [
            h
            for h in self.hits.values()
            if self._status(h, now) == status
            and (not p.get("HITTypeId") or h.hit_type.hit_type_id == p["HITTypeId"])
        ]
        chunk, token = self._page(hits, p)
        return {"NextToken": token, "NumResults": len(chunk), "HITs": [self._hit_out(h, now) for h in chunk]}

    def op_UpdateExpirationForHIT(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        hit = self._get_hit(p["HITId"])
        if hit.disposed:
            raise invalid(f"Hit {hit.hit_id} has been deleted.", "AWS.MechanicalTurk.HITDoesNotExist")
        hit.expiration = max(now, _epoch(p["ExpireAt"]))
        self._version += 1
        return {}

    def op_UpdateHITReviewStatus(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        hit = self._get_hit(p["HITId"])
        status, revert = self._status(hit, now), p.get("Revert", False)
        if revert and status != "Reviewing" or not revert and status != "Reviewable":
            raise invalid(
                f"This operation can be called with a status of: {'Reviewing' if revert else 'Reviewable'}"
                f" (HIT {hit.hit_id} is {status})",
                "AWS.MechanicalTurk.InvalidHITState",
            )
        hit.reviewing = not revert
        return {}

    def op_DeleteHIT(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        hit = self._get_hit(p["HITId"])
        status = self._status(hit, now)
        waiting = any(self.assignments[a].status == "Submitted" for a in hit.assignment_ids)
        if status not in ("Reviewable", "Reviewing") or waiting:
            raise invalid(
                f"This HIT is currently in the state '{status}'. This operation can be called with a "
                "status of: Reviewable, Reviewing, with every submitted assignment approved or rejected.",
                "AWS.MechanicalTurk.InvalidHITState",
            )
        hit.disposed = True
        return {}

    def op_CreateAdditionalAssignmentsForHIT(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        hit = self._get_hit(p["HITId"])
        extra, token = p["NumberOfAdditionalAssignments"], p.get("UniqueRequestToken")
        if self._token("extend", token, now):
            raise invalid(
                f"The request with UniqueRequestToken {token} has already been processed.",
                "AWS.MechanicalTurk.DuplicateRequest",
            )
        if extra < 1:
            raise invalid("NumberOfAdditionalAssignments must be at least 1")
        if hit.disposed:
            raise invalid(f"Hit {hit.hit_id} has been deleted.", "AWS.MechanicalTurk.HITDoesNotExist")
        if hit.max_assignments < 10 <= hit.max_assignments + extra:
            raise invalid(
                "HITs created with fewer than 10 assignments cannot be extended to have 10 or more "
                "assignments.",
                "AWS.MechanicalTurk.InvalidMaximumAssignmentsIncrease",
            )
        if hit.max_assignments + extra > 1_000_000:
            raise invalid("MaxAssignments cannot exceed 1000000")
        reward = hit.hit_type.reward
        if extra * (reward + assignment_fee(reward, hit.max_assignments)) > self._balance:
            raise MTurkError(
                "This Requester has insufficient funds in their account to complete this transaction.",
                "AWS.MechanicalTurk.InsufficientFunds",
            )
        hit.max_assignments += extra
        hit.reviewing = False
        self._remember("extend", token, hit.hit_id, now)
        self._version += 1
        return {}

    # ----------------------------------------------------------------- operations: assignments
    def op_ListAssignmentsForHIT(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        hit = self._get_hit(p["HITId"])
        statuses = set(p.get("AssignmentStatuses") or ("Submitted", "Approved", "Rejected"))
        rows = sorted(
            (self.assignments[a] for a in hit.assignment_ids if self.assignments[a].status in statuses),
            key=lambda a: a.submit_seq,
        )
        chunk, token = self._page(rows, p)
        return {
            "NextToken": token,
            "NumResults": len(chunk),
            "Assignments": [self._assignment_out(a) for a in chunk],
        }

    def op_GetAssignment(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        a = self._get_assignment(p["AssignmentId"])
        return {"Assignment": self._assignment_out(a), "HIT": self._hit_out(self.hits[a.hit_id], now)}

    def op_ApproveAssignment(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        a = self._get_assignment(p["AssignmentId"])
        feedback = p.get("RequesterFeedback")
        if feedback is not None and len(feedback) > 1024:
            raise invalid("RequesterFeedback must be at most 1024 characters long")
        if a.status == "Rejected" and p.get("OverrideRejection"):
            if not (a.rejected and within(a.rejected, OVERRIDE_WINDOW_S, now)):
                raise invalid(
                    "The rejection can no longer be overridden.", "AWS.MechanicalTurk.InvalidAssignmentState"
                )
        elif a.status != "Submitted":
            raise invalid(
                f"This operation can be called with a status of: Submitted (assignment {a.assignment_id} "
                f"is {a.status})",
                "AWS.MechanicalTurk.InvalidAssignmentState",
            )
        self._approve(a, now, feedback)
        return {}

    def op_RejectAssignment(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        a = self._get_assignment(p["AssignmentId"])
        if a.status != "Submitted":
            raise invalid(
                f"This operation can be called with a status of: Submitted (assignment {a.assignment_id} "
                f"is {a.status})",
                "AWS.MechanicalTurk.InvalidAssignmentState",
            )
        if not p["RequesterFeedback"].strip() or len(p["RequesterFeedback"]) > 1024:
            raise invalid("RequesterFeedback must be 1 to 1024 characters long")
        a.status, a.rejected, a.feedback = "Rejected", now, p["RequesterFeedback"]
        return {}

    def op_SendBonus(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        token = p.get("UniqueRequestToken")
        if self._token("bonus", token, now):
            raise invalid(
                f"The bonus with UniqueRequestToken {token} has already been paid; the request was not "
                "processed again.",
                "AWS.MechanicalTurk.DuplicateRequest",
            )
        a = self._get_assignment(p["AssignmentId"])
        if a.worker_id != p["WorkerId"]:
            raise invalid(f"Assignment {a.assignment_id} was not done by worker {p['WorkerId']}")
        try:
            amount = Decimal(p["BonusAmount"])
        except InvalidOperation as e:
            raise invalid("BonusAmount is not an amount in dollars") from e
        if amount <= 0:
            raise invalid("BonusAmount must be greater than 0")
        if not p["Reason"].strip():
            raise invalid("Reason must not be empty")
        self._charge(money(amount) + bonus_fee(amount))
        self.bonuses.append(Bonus(p["WorkerId"], a.assignment_id, money(amount), p["Reason"], now))
        self._remember("bonus", token, a.assignment_id, now)
        return {}

    def op_ListBonusPayments(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        if bool(p.get("HITId")) == bool(p.get("AssignmentId")):
            raise invalid("Give exactly one of HITId or AssignmentId")
        if p.get("HITId"):
            ids = set(self._get_hit(p["HITId"]).assignment_ids)
            rows = [b for b in self.bonuses if b.assignment_id in ids]
        else:
            rows = [b for b in self.bonuses if b.assignment_id == p["AssignmentId"]]
        chunk, token = self._page(rows, p)
        return {
            "NextToken": token,
            "NumResults": len(chunk),
            "BonusPayments": [
                {
                    "WorkerId": b.worker_id,
                    "BonusAmount": f"{b.amount:.2f}",
                    "AssignmentId": b.assignment_id,
                    "Reason": b.reason,
                    "GrantTime": b.granted,
                }
                for b in chunk
            ],
        }

    def op_GetAccountBalance(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {"AvailableBalance": f"{self._balance:.2f}", "OnHoldBalance": "0.00"}

    def op_NotifyWorkers(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        if len(p["Subject"]) > 200 or len(p["MessageText"]) > 4096:
            raise invalid("Subject must be at most 200 and MessageText at most 4096 characters long")
        self.notifications.append({"subject": p["Subject"], "workers": list(p["WorkerIds"]), "at": now})
        return {"NotifyWorkersFailureStatuses": []}

    # ----------------------------------------------------------------- operations: qualifications
    def _qt_out(self, qt: QualificationType) -> dict[str, Any]:
        return {
            "QualificationTypeId": qt.qt_id,
            "CreationTime": qt.created,
            "Name": qt.name,
            "Description": qt.description,
            "Keywords": qt.keywords,
            "QualificationTypeStatus": qt.status,
            "Test": qt.test,
            "TestDurationInSeconds": qt.test_duration_s,
            "AnswerKey": qt.answer_key,
            "RetryDelayInSeconds": qt.retry_delay_s,
            "IsRequestable": bool(qt.test or qt.auto_granted),
            "AutoGranted": qt.auto_granted,
            "AutoGrantedValue": qt.auto_granted_value if qt.auto_granted else None,
        }

    @staticmethod
    def _qual_out(x: Qualification) -> dict[str, Any]:
        return {
            "QualificationTypeId": x.qt_id,
            "WorkerId": x.worker_id,
            "GrantTime": x.granted,
            "IntegerValue": x.value,
            "LocaleValue": x.locale,
            "Status": x.status,
        }

    def _apply_qt_fields(self, qt: QualificationType, p: dict[str, Any]) -> None:
        test = p.get("Test", qt.test)
        key = p.get("AnswerKey", qt.answer_key)
        duration = p.get("TestDurationInSeconds", qt.test_duration_s)
        auto = p.get("AutoGranted", qt.auto_granted)
        if test:
            if q.check_question(test, "Test") != q.NS_FORM:
                raise invalid("Test must be a QuestionForm")
            if not duration:
                raise invalid("TestDurationInSeconds is required with a Test")
            if auto:
                raise invalid("A QualificationType with a Test cannot be AutoGranted")
        if key:
            if not test:
                raise invalid("AnswerKey needs a Test")
            q.check_answer_key(key)
        if p.get("RetryDelayInSeconds") is not None and p["RetryDelayInSeconds"] < 0:
            raise invalid("RetryDelayInSeconds must be >= 0")
        qt.test, qt.answer_key, qt.test_duration_s, qt.auto_granted = test, key, duration, auto
        qt.retry_delay_s = p.get("RetryDelayInSeconds", qt.retry_delay_s)
        qt.auto_granted_value = p.get("AutoGrantedValue", qt.auto_granted_value)
        for name, attr in (("Description", "description"), ("QualificationTypeStatus", "status")):
            if name in p:
                setattr(qt, attr, p[name])

    def op_CreateQualificationType(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        if any(t.name == p["Name"] for t in self.qual_types.values()):
            raise invalid(
                "You have already created a QualificationType with this name. A QualificationType's name "
                "must be unique among all of the QualificationTypes created by the same user.",
                "AWS.MechanicalTurk.QualificationTypeAlreadyExists",
            )
        qt = QualificationType(
            self._new_id(),
            p["Name"],
            p["Description"],
            p["QualificationTypeStatus"],
            now,
            p.get("Keywords") or "",
        )
        self._apply_qt_fields(qt, p)
        self.qual_types[qt.qt_id] = qt
        self._version += 1
        return {"QualificationType": self._qt_out(qt)}

    def op_GetQualificationType(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {"QualificationType": self._qt_out(self._get_qt(p["QualificationTypeId"]))}

    def op_UpdateQualificationType(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        qt = self._get_qt(p["QualificationTypeId"])
        self._apply_qt_fields(qt, {k: v for k, v in p.items() if k != "QualificationTypeId"})
        self._version += 1
        return {"QualificationType": self._qt_out(qt)}

    def op_ListQualificationTypes(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        query = (p.get("Query") or "").lower()
        rows = [
            t
            for t in self.qual_types.values()
            if (not query or query in f"{t.name} {t.description} {t.keywords}".lower())
            and (not p["MustBeRequestable"] or t.test or t.auto_granted)
        ]
        chunk, token = self._page(rows, p)
        return {
            "NumResults": len(chunk),
            "NextToken": token,
            "QualificationTypes": [self._qt_out(t) for t in chunk],
        }

    def op_AssociateQualificationWithWorker(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        self._get_qt(p["QualificationTypeId"])
        self.quals[(p["QualificationTypeId"], p["WorkerId"])] = Qualification(
            p["QualificationTypeId"], p["WorkerId"], p.get("IntegerValue", 1), now
        )
        self._version += 1
        return {}

    def op_DisassociateQualificationFromWorker(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        self._get_qt(p["QualificationTypeId"])
        x = self.quals.get((p["QualificationTypeId"], p["WorkerId"]))
        if x is None or x.status != "Granted":
            raise invalid(
                f"Worker {p['WorkerId']} does not have this Qualification.",
                "AWS.MechanicalTurk.QualificationDoesNotExist",
            )
        x.status = "Revoked"
        self._version += 1
        return {}

    def op_GetQualificationScore(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        self._get_qt(p["QualificationTypeId"])
        x = self.quals.get((p["QualificationTypeId"], p["WorkerId"]))
        if x is None:
            raise invalid(
                "You requested a Qualification that does not exist.",
                "AWS.MechanicalTurk.QualificationDoesNotExist",
            )
        return {"Qualification": self._qual_out(x)}

    def op_ListWorkersWithQualificationType(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        self._get_qt(p["QualificationTypeId"])
        rows = [
            x
            for (qt_id, _), x in self.quals.items()
            if qt_id == p["QualificationTypeId"] and (not p.get("Status") or x.status == p["Status"])
        ]
        chunk, token = self._page(rows, p)
        return {
            "NextToken": token,
            "NumResults": len(chunk),
            "Qualifications": [self._qual_out(x) for x in chunk],
        }

    def op_CreateWorkerBlock(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        if not p["Reason"].strip():
            raise invalid("Reason must not be empty")
        self.blocks[p["WorkerId"]] = p["Reason"]
        return {}

    def op_DeleteWorkerBlock(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        self.blocks.pop(p["WorkerId"], None)
        self._version += 1
        return {}

    def op_ListWorkerBlocks(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        chunk, token = self._page(list(self.blocks.items()), p)
        return {
            "NextToken": token,
            "NumResults": len(chunk),
            "WorkerBlocks": [{"WorkerId": w, "Reason": r} for w, r in chunk],
        }

    # ----------------------------------------------------------------- the crowd's side (crowd.Market)
    def version(self) -> int:
        with self.lock:
            return self._version

    def tick(self, now: datetime) -> None:
        """Auto-approve due assignments and release ones whose worker ran out of time."""
        with self.lock:
            while self._timers and self._timers[0][0] <= now:
                at, _, kind, aid = heapq.heappop(self._timers)
                a = self.assignments[aid]
                if kind == "deadline" and a.status == "Accepted":
                    a.status = "Abandoned"
                    self._version += 1
                elif kind == "autoapprove" and a.status == "Submitted":
                    hit = self.hits[a.hit_id]
                    # MTurk pays auto-approvals unconditionally; the balance may not block them
                    reward = hit.hit_type.reward
                    self._balance -= reward + assignment_fee(reward, hit.max_assignments)
                    a.status, a.approved = "Approved", at

    def _worker_value(self, worker: SimWorker, qt_id: str) -> tuple[bool, int | None, dict[str, str] | None]:
        if qt_id == LOCALE_QT:
            return True, None, {"Country": worker.country}
        if qt_id in SYSTEM_QTS:
            return True, SYSTEM_QTS[qt_id], None
        x = self.quals.get((qt_id, worker.worker_id))
        if x and x.status == "Granted":
            return True, x.value, x.locale
        qt = self.qual_types.get(qt_id)
        if x is None and qt and qt.auto_granted and qt.status == "Active":
            return True, qt.auto_granted_value, None
        return False, None, None

    def _meets(self, worker: SimWorker, r: dict[str, Any]) -> bool:
        has, value, locale = self._worker_value(worker, r["QualificationTypeId"])
        comp = r["Comparator"]
        if comp == "Exists":
            return has
        if comp == "DoesNotExist":
            return not has
        if not has:
            return False
        if r.get("LocaleValues"):
            if locale is None:
                return False
            wanted = [_locale_key(v) for v in r["LocaleValues"]]
            mine = _locale_key(locale)
            if comp in ("EqualTo", "In"):
                return any(c == mine[0] and (s is None or s == mine[1]) for c, s in wanted)
            return not any(c == mine[0] and (s is None or s == mine[1]) for c, s in wanted)
        return value is not None and _compare(comp, value, r.get("IntegerValues") or [])

    def _test_to_take(self, worker: SimWorker, qt_id: str, now: datetime) -> bool:
        qt = self.qual_types.get(qt_id)
        if not qt or not qt.test or not qt.answer_key or qt.status != "Active":
            return False
        last = self._attempts.get((qt_id, worker.worker_id))
        return last is None or (qt.retry_delay_s is not None and not within(last, qt.retry_delay_s, now))

    def _eligibility(self, worker: SimWorker, hit: HIT, now: datetime) -> tuple[bool, list[str]]:
        """May the worker accept the HIT now; if not, which tests would help."""
        tests, ok = [], True
        for r in hit.hit_type.requirements:
            if not self._meets(worker, r):
                ok = False
                if r["Comparator"] != "DoesNotExist" and self._test_to_take(
                    worker, r["QualificationTypeId"], now
                ):
                    tests.append(r["QualificationTypeId"])
        return ok, tests

    def offers(self, worker: SimWorker, now: datetime) -> list[Offer]:
        with self.lock:
            if worker.worker_id in self.blocks:
                return []
            work: list[Offer] = []
            tests: dict[str, Offer] = {}
            for hit in self.hits.values():
                if len(work) >= MAX_OFFERS:
                    break
                if hit.disposed or self._status(hit, now) != "Assignable":
                    continue
                if any(
                    self.assignments[a].worker_id == worker.worker_id
                    and self.assignments[a].status != "Abandoned"
                    for a in hit.assignment_ids
                ):
                    continue
                ok, needed = self._eligibility(worker, hit, now)
                if ok:
                    work.append(Offer(hit.hit_id))
                for qt_id in needed:
                    tests.setdefault(qt_id, Offer(qt_id, "test"))
            return list(tests.values()) + work

    def accept(self, worker: SimWorker, offer: Offer, now: datetime) -> Job | None:
        with self.lock:
            if offer.kind == "test":
                if not self._test_to_take(worker, offer.ref, now):
                    return None
                qt = self.qual_types[offer.ref]
                self._attempts[(qt.qt_id, worker.worker_id)] = now
                tasks = q.read_question_form(qt.test or "", qt.answer_key)
                return Job(qt.qt_id, TestAttempt(qt.qt_id, now, tasks), tasks, "test")
            hit = self.hits.get(offer.ref)
            if hit is None or worker.worker_id in self.blocks or self._status(hit, now) != "Assignable":
                return None
            if not self._eligibility(worker, hit, now)[0]:
                return None
            for r in hit.hit_type.requirements:  # auto-granted qualifications are granted when first used
                qt = self.qual_types.get(r["QualificationTypeId"])
                if qt and qt.auto_granted and (qt.qt_id, worker.worker_id) not in self.quals:
                    self.quals[(qt.qt_id, worker.worker_id)] = Qualification(
                        qt.qt_id, worker.worker_id, qt.auto_granted_value, now
                    )
            a = Assignment(
                self._new_id(),
                hit.hit_id,
                worker.worker_id,
                now,
                now + timedelta(seconds=hit.hit_type.assignment_duration_s),
            )
            self.assignments[a.assignment_id] = a
            hit.assignment_ids.append(a.assignment_id)
            self._timer(a.deadline, "deadline", a.assignment_id)
            return Job(hit.hit_id, a.assignment_id, self._tasks(hit))

    def _tasks(self, hit: HIT) -> list[Any]:
        kind, parsed = self._forms[hit.hit_id]
        if parsed is None:
            if kind == q.NS_HTML:
                parsed = q.read_html_form(q.html_content(hit.question))
            elif kind == q.NS_FORM:
                parsed = q.read_question_form(hit.question)
            else:
                parsed = []
            self._forms[hit.hit_id] = (kind, parsed)
        if kind == q.NS_HTML:
            return [item.task for item in parsed]
        return list(parsed)

    def submit(self, worker: SimWorker, job: Job, answers: list[dict[str, Any]], now: datetime) -> None:
        with self.lock:
            if job.kind == "test":
                attempt: TestAttempt = job.handle
                qt = self.qual_types.get(attempt.qt_id)
                if not qt or not qt.answer_key or not within(attempt.started, qt.test_duration_s or 0, now):
                    return
                xml = q.question_form_answer(job.tasks, answers)
                self.quals[(qt.qt_id, worker.worker_id)] = Qualification(
                    qt.qt_id, worker.worker_id, q.score(qt.answer_key, xml), now
                )
                self._version += 1
                return
            a = self.assignments.get(job.handle)
            if a is None or a.status != "Accepted":
                return  # too late: the assignment expired meanwhile
            hit = self.hits[a.hit_id]
            kind, parsed = self._forms[hit.hit_id]
            if kind == q.NS_HTML:
                a.answer = q.crowd_form_answer_xml(q.task_answers(parsed, answers))
            elif kind == q.NS_FORM:
                a.answer = q.question_form_answer(job.tasks, answers)
            else:
                a.answer = q.crowd_form_answer_xml({})
            a.status, a.submitted, a.submit_seq = "Submitted", now, next(self._submit_seq)
            a.auto_approval = now + timedelta(seconds=hit.hit_type.auto_approval_delay_s)
            self._timer(a.auto_approval, "autoapprove", a.assignment_id)

    def abandon(self, worker: SimWorker, job: Job, now: datetime) -> None:
        with self.lock:
            if job.kind == "work":
                a = self.assignments.get(job.handle)
                if a and a.status == "Accepted":
                    a.status = "Abandoned"
                    self._version += 1
