"""The local MTurk requester service: MTurk's semantics over the model-driven wire layer.

Each ``op_<Operation>`` method holds only what the service *does*; request validation and
response shaping happen once, in ``wire``. The server is also the ``crowd.Market`` the simulated
crowd works on: workers see the Assignable HITs they qualify for (taking a qualification's test
first when they need it), and submit what each page posts, in MTurk's real formats (``questions``).
Every operation of botocore's model is served. Workers carry MTurk's system qualifications
(Masters, Locale, approval rate and count, Adult; ``state.SYSTEM_QUALIFICATION_TYPES``), ask for
requestable qualifications that have no test (``ListQualificationRequests``), and HIT-type events
go out as MTurk's notifications (``notify``). Ids are fresh per start unless ``id_seed`` is given;
nothing here orders by an id's value, so the crowd does the same work either way.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import random
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.local.clock import SimClock
from connectors.local.crowd import Crowd, Job, Offer, SimWorker
from connectors.local.faults import FaultConfig
from connectors.local.http import LocalServer, Request, Response
from connectors.local.mturk import notify, wire
from connectors.local.mturk import questions as q
from connectors.local.mturk.notify import Notifier
from connectors.local.mturk.review_policies import ReviewPolicies
from connectors.local.mturk.state import (
    HIT,
    LOCALE_QT,
    MASTERS_QTS,
    SYSTEM_QT_CREATED,
    SYSTEM_QUALIFICATION_TYPES,
    Assignment,
    Bonus,
    HITType,
    Qualification,
    QualificationRequest,
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

ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
MAX_INTEGER_VALUES, MAX_LOCALE_VALUES = 15, 30  # per In / NotIn requirement
# ASCII control characters MTurk refuses in text shown to workers (RequesterFeedback)
FORBIDDEN_CONTROL = {chr(c) for c in [*range(0, 9), 11, 12, *range(14, 32)]}
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


def _check_feedback(text: str) -> None:
    """MTurk's rule for RequesterFeedback: up to 1024 characters, no ASCII control characters but
    tab, newline and carriage return; an empty message is fine."""
    if len(text) > 1024:
        raise invalid("RequesterFeedback can be up to 1024 characters long")
    if FORBIDDEN_CONTROL.intersection(text):
        raise invalid("RequesterFeedback cannot contain ASCII characters 0-8, 11, 12 or 14-31")


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
        id_seed: int | None = None,
    ):
        super().__init__(clock, crowd, faults, port, balance)
        self._balance = money(Decimal(balance))
        # ids are fresh on every server start (clients keep databases of them); a seed makes them
        # repeatable for a test. Nothing orders by id value, so the crowd behaves the same either way.
        self._ids = random.Random(f"mturk-ids:{id_seed}") if id_seed is not None else None
        self._issued: set[str] = set()
        self.hit_types: dict[str, HITType] = {}
        self._hit_type_keys: dict[tuple, str] = {}
        self.hits: dict[str, HIT] = {}
        self.assignments: dict[str, Assignment] = {}
        self.qual_types: dict[str, QualificationType] = {}
        self.quals: dict[tuple[str, str], Qualification] = {}
        self.blocks: dict[str, str] = {}
        self.bonuses: list[Bonus] = []
        self.notifications: list[dict[str, Any]] = []
        self.qual_requests: dict[str, QualificationRequest] = {}
        self._requested: dict[tuple[str, str], datetime] = {}  # (qt, worker) -> last request or rejection
        self._record: dict[str, list[int]] = {}  # worker -> [approved, rejected] here
        self.notifier = Notifier()
        self.policies = ReviewPolicies(self)  # CreateHIT's review policies and what they did
        self._reviewable: set[str] = set()  # HITs whose HITReviewable event went out
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
        """An id in MTurk's format (30 upper-case letters and digits), never issued before here."""
        choice = self._ids.choice if self._ids is not None else secrets.choice
        while True:
            new = lead + "".join(choice(ID_ALPHABET) for _ in range(29))
            if new not in self._issued and new not in SYSTEM_QUALIFICATION_TYPES:
                self._issued.add(new)
                return new

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
        """One page of a List* answer, as MTurk pages: every non-empty page carries a NextToken (the
        last one too); the call after the last page answers an empty page without one. Clients'
        loops rely on both (Mephisto reads ``NextToken`` until a page is empty; boto3's paginator
        stops when it is missing)."""
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
        end = start + len(chunk)
        return chunk, base64.urlsafe_b64encode(f"o:{end}".encode()).decode() if chunk else None

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
        if qt is None or qt.deleted:
            raise invalid(
                f"QualificationType {qt_id} does not exist.",
                "AWS.MechanicalTurk.QualificationTypeDoesNotExist",
            )
        return qt

    # ----------------------------------------------------------------- HIT bookkeeping
    def _counts(self, hit: HIT) -> tuple[int, int, int]:
        """Pending, available, completed as MTurk counts them: "completed" is approved or rejected
        only, so a submitted assignment awaiting review is in none of the three."""
        pending = submitted = completed = 0
        for aid in hit.assignment_ids:
            status = self.assignments[aid].status
            pending += status == "Accepted"
            submitted += status == "Submitted"
            completed += status in ("Approved", "Rejected")
        return pending, max(0, hit.max_assignments - pending - submitted - completed), completed

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

    @staticmethod
    def _fee(t: HITType, max_assignments: int) -> Decimal:
        """MTurk's commission on one assignment of a HIT of type ``t`` (Masters HITs pay more)."""
        masters = any(
            r["QualificationTypeId"] in MASTERS_QTS and r["Comparator"] != "DoesNotExist" for r in t.requirements
        )
        return assignment_fee(t.reward, max_assignments, masters)

    def _decide(self, a: Assignment, status: str, now: datetime) -> None:
        """Approve or reject: the worker's record (what the approval-rate qualifications read) and
        the requester's notification follow."""
        record = self._record.setdefault(a.worker_id, [0, 0])
        if a.status in ("Approved", "Rejected"):
            record[a.status == "Rejected"] -= 1
        record[status == "Rejected"] += 1
        a.status = status
        self._notify(self.hits[a.hit_id], f"Assignment{status}", now, a.assignment_id)

    def _approve(self, a: Assignment, now: datetime, feedback: str | None = None) -> None:
        hit = self.hits[a.hit_id]
        self._charge(hit.hit_type.reward + self._fee(hit.hit_type, hit.max_assignments))
        self._decide(a, "Approved", now)
        a.approved, a.rejected = now, None
        if feedback is not None:
            a.feedback = feedback

    def _notify(self, hit: HIT, kind: str, at: datetime, assignment_id: str | None = None) -> None:
        if kind == "HITExtended":  # it may become Reviewable again
            self._reviewable.discard(hit.hit_id)
        t = hit.hit_type
        if t.notify and t.notification and kind in t.notification["EventTypes"]:
            self.notifier.send(t.notification, [notify.event(kind, at, t.hit_type_id, hit.hit_id, assignment_id)])

    def _if_reviewable(self, hit: HIT, at: datetime) -> None:
        """Once per time the HIT becomes Reviewable: its notification, then the HIT-level review
        policy, which MTurk applies at that moment."""
        if self._status(hit, at) != "Reviewable" or hit.hit_id in self._reviewable:
            return
        self._reviewable.add(hit.hit_id)
        self._notify(hit, "HITReviewable", at)
        self.policies.hit_reviewable(hit.hit_id, at)

    # ----------------------------------------------------------------- validation of semantics
    def _check_requirements(self, reqs: list[dict[str, Any]]) -> None:
        for r in reqs:
            qt_id, comp = r["QualificationTypeId"], r["Comparator"]
            ints, locales = r.get("IntegerValues"), r.get("LocaleValues")
            if qt_id not in SYSTEM_QUALIFICATION_TYPES:
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
            limit = MAX_LOCALE_VALUES if locales else MAX_INTEGER_VALUES
            if len(values) > limit:
                raise invalid(f"Comparator {comp} takes at most {limit} values")

    @staticmethod
    def _check_type_fields(p: dict[str, Any]) -> None:
        if not 30 <= p["AssignmentDurationInSeconds"] <= 31536000:
            raise invalid("AssignmentDurationInSeconds must be between 30 and 31536000")
        if not 0 <= p.get("AutoApprovalDelayInSeconds", 2592000) <= 2592000:
            raise invalid("AutoApprovalDelayInSeconds must be between 0 and 2592000")
        for name, limit in (("Title", 128), ("Description", 2000), ("Keywords", 1000)):
            if len(p.get(name) or "") > limit:
                raise invalid(f"{name} must be at most {limit} characters long")

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
        for unsupported in ("HITLayoutId", "HITLayoutParameters"):
            if p.get(unsupported):
                raise invalid(f"{unsupported} is not supported by the local MTurk server")
        if not p.get("Question"):
            raise invalid("missing required parameter Question")
        kind = q.check_question(p["Question"])
        policies = self.policies.check(p)
        max_assignments = p.get("MaxAssignments", 1)
        if not 1 <= max_assignments <= 1_000_000:
            raise invalid("MaxAssignments must be between 1 and 1000000")
        if not 30 <= p["LifetimeInSeconds"] <= 31536000:
            raise invalid("LifetimeInSeconds must be between 30 and 31536000")
        if len(p.get("RequesterAnnotation") or "") > 255:
            raise invalid("RequesterAnnotation must be at most 255 characters long")
        cost = max_assignments * (t.reward + self._fee(t, max_assignments))
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
        self.policies.attach(hit.hit_id, policies)
        self._remember("hit", token, hit.hit_id, now)
        self._version += 1
        self._timer(hit.expiration, "expire", hit.hit_id)
        self._notify(hit, "HITCreated", now)
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

    def _get_hit_type(self, hit_type_id: str) -> HITType:
        t = self.hit_types.get(hit_type_id)
        if t is None:
            raise invalid(f"HITType {hit_type_id} does not exist.", "AWS.MechanicalTurk.HITTypeDoesNotExist")
        return t

    def op_CreateHITWithHITType(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        return self._create_hit(self._get_hit_type(p["HITTypeId"]), p, now)

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
        # MTurk: "To expire a HIT immediately, provide the value 0 or set ExpireAt to a time in the past".
        # The past is the client's too: a client sending its wall-clock now (psiTurk, amti) means
        # "at once" even while simulated time lags behind the wall clock (speed 0).
        # An expired HIT's Expiration is also no later than the wall clock, so a client comparing it
        # with its own clock (psiTurk's is_expired) sees it expired while simulated time runs ahead.
        expire_at, wall = _epoch(p["ExpireAt"]), datetime.now(UTC)
        past = expire_at <= max(now, wall)
        hit.expiration = min(now, max(expire_at, wall)) if past else expire_at
        self._version += 1
        if past:
            self._notify(hit, "HITExpired", now)
            self._if_reviewable(hit, now)
        else:
            self._timer(hit.expiration, "expire", hit.hit_id)
            self._notify(hit, "HITExtended", now)
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
        self._notify(hit, "HITDisposed", now)
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
        if extra * (hit.hit_type.reward + self._fee(hit.hit_type, hit.max_assignments)) > self._balance:
            raise MTurkError(
                "This Requester has insufficient funds in their account to complete this transaction.",
                "AWS.MechanicalTurk.InsufficientFunds",
            )
        hit.max_assignments += extra
        hit.reviewing = False
        self._remember("extend", token, hit.hit_id, now)
        self._version += 1
        self._notify(hit, "HITExtended", now)
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
        if feedback is not None:
            _check_feedback(feedback)
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
        _check_feedback(p["RequesterFeedback"])  # may be empty: MTurk takes RejectAssignment(RequesterFeedback="")
        self._decide(a, "Rejected", now)
        a.rejected, a.feedback = now, p["RequesterFeedback"]
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
        if len(p["WorkerIds"]) > 100:  # "You can notify up to 100 Workers at a time"
            raise invalid("WorkerIds can name up to 100 workers")
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
            # a requester's own Active type is requestable: workers ask for it (take its test, are
            # auto-granted, or wait for AcceptQualificationRequest); only system types are not
            "IsRequestable": qt.status == "Active",
            "AutoGranted": qt.auto_granted,
            "AutoGrantedValue": qt.auto_granted_value if qt.auto_granted else None,
        }

    @staticmethod
    def _system_qt_out(qt_id: str) -> dict[str, Any]:
        t = SYSTEM_QUALIFICATION_TYPES[qt_id]
        return {
            "QualificationTypeId": t.qt_id,
            "CreationTime": SYSTEM_QT_CREATED,
            "Name": t.name,
            "Description": t.description,
            "Keywords": "",
            "QualificationTypeStatus": "Active",
            "IsRequestable": False,  # "False for Qualifications assigned automatically by the system"
            "AutoGranted": False,
        }

    def _hits_using(self, qt_id: str) -> list[HIT]:
        return [
            h
            for h in self.hits.values()
            if not h.disposed and any(r["QualificationTypeId"] == qt_id for r in h.hit_type.requirements)
        ]

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
            if q.check_question(test, "Test") != q.FORM:
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
        # a deleted type's name is free again once no HIT that uses it is left
        if any(t.name == p["Name"] and (not t.deleted or self._hits_using(t.qt_id)) for t in self.qual_types.values()):
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
        if p["QualificationTypeId"] in SYSTEM_QUALIFICATION_TYPES:
            return {"QualificationType": self._system_qt_out(p["QualificationTypeId"])}
        return {"QualificationType": self._qt_out(self._get_qt(p["QualificationTypeId"]))}

    def op_DeleteQualificationType(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        """MTurk's rule: the type and every HIT type using it go; qualifications already granted
        stay (running HITs may need them); pending requests for it are rejected."""
        qt = self._get_qt(p["QualificationTypeId"])
        qt.deleted = True
        for hit_type_id, t in list(self.hit_types.items()):
            if any(r["QualificationTypeId"] == qt.qt_id for r in t.requirements):
                del self.hit_types[hit_type_id]
                self._hit_type_keys = {k: v for k, v in self._hit_type_keys.items() if v != hit_type_id}
        for rid, req in list(self.qual_requests.items()):
            if req.qt_id == qt.qt_id:
                del self.qual_requests[rid]
        self._version += 1
        return {}

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
            if not t.deleted
            and (not query or query in f"{t.name} {t.description} {t.keywords}".lower())
            and (not p["MustBeRequestable"] or self._qt_out(t)["IsRequestable"])
        ]
        if not p["MustBeRequestable"] and not p.get("MustBeOwnedByCaller"):
            # "If false, all Qualification types, including those managed by the system, are considered"
            rows += [
                t
                for t in SYSTEM_QUALIFICATION_TYPES.values()
                if not query or query in f"{t.name} {t.description}".lower()
            ]
        chunk, token = self._page(rows, p)
        return {
            "NumResults": len(chunk),
            "NextToken": token,
            "QualificationTypes": [
                self._qt_out(t) if isinstance(t, QualificationType) else self._system_qt_out(t.qt_id) for t in chunk
            ],
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
        self.blocks[p["WorkerId"]] = p["Reason"]  # an empty Reason is fine: the worker never sees it
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

    def op_ListHITsForQualificationType(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        qt_id = p["QualificationTypeId"]
        if qt_id not in SYSTEM_QUALIFICATION_TYPES:
            self._get_qt(qt_id)
        chunk, token = self._page(self._hits_using(qt_id), p)
        return {"NextToken": token, "NumResults": len(chunk), "HITs": [self._hit_out(h, now) for h in chunk]}

    # ----------------------------------------------------------------- operations: qualification requests
    def op_ListQualificationRequests(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        if p.get("QualificationTypeId"):
            self._get_qt(p["QualificationTypeId"])
        rows = [r for r in self.qual_requests.values() if r.qt_id == p.get("QualificationTypeId", r.qt_id)]
        chunk, token = self._page(rows, p)
        return {
            "NumResults": len(chunk),
            "NextToken": token,
            "QualificationRequests": [
                {
                    "QualificationRequestId": r.request_id,
                    "QualificationTypeId": r.qt_id,
                    "WorkerId": r.worker_id,
                    "Test": r.test,
                    "Answer": r.answer,
                    "SubmitTime": r.submitted,
                }
                for r in chunk
            ],
        }

    def _take_request(self, request_id: str) -> QualificationRequest:
        req = self.qual_requests.pop(request_id, None)
        if req is None:
            raise invalid(
                f"QualificationRequest {request_id} does not exist.",
                "AWS.MechanicalTurk.QualificationRequestDoesNotExist",
            )
        return req

    def op_AcceptQualificationRequest(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        req = self._take_request(p["QualificationRequestId"])
        self.quals[(req.qt_id, req.worker_id)] = Qualification(req.qt_id, req.worker_id, p.get("IntegerValue", 1), now)
        self._version += 1
        return {}

    def op_RejectQualificationRequest(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        req = self._take_request(p["QualificationRequestId"])
        self._requested[(req.qt_id, req.worker_id)] = now  # the retry delay runs from the rejection
        return {}

    # ----------------------------------------------------------------- operations: HIT types, review, notifications
    def op_UpdateHITTypeOfHIT(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        hit = self._get_hit(p["HITId"])
        if hit.disposed:
            raise invalid(f"Hit {hit.hit_id} has been deleted.", "AWS.MechanicalTurk.HITDoesNotExist")
        hit.hit_type = self._get_hit_type(p["HITTypeId"])
        self._version += 1
        return {}

    def op_ListReviewPolicyResultsForHIT(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        return self.policies.listing(self._get_hit(p["HITId"]).hit_id, p)

    def op_UpdateNotificationSettings(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        t = self._get_hit_type(p["HITTypeId"])
        if p.get("Notification") is None and p.get("Active") is None:
            raise invalid("Specify Notification, Active or both")
        if p.get("Notification") is not None:
            notify.check_spec(p["Notification"])
            t.notification = p["Notification"]
        if t.notification is None:
            raise invalid(f"HITType {t.hit_type_id} has no notification to activate")
        t.notify = p.get("Active", True)
        return {}

    def op_SendTestEventNotification(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        notify.check_spec(p["Notification"], test=True)
        kind, example = p["TestEventType"], "3" + "0" * 29  # a test event names no real HIT
        assignment = example if kind.startswith("Assignment") else None
        self.notifier.send(p["Notification"], [notify.event(kind, now, example, example, assignment)])
        return {}

    def op_GetFileUploadURL(self, p: dict[str, Any], now: datetime) -> dict[str, Any]:
        a = self._get_assignment(p["AssignmentId"])
        if f"<QuestionIdentifier>{p['QuestionIdentifier']}</QuestionIdentifier><UploadedFileKey>" not in (
            a.answer or ""
        ).replace("\n", "").replace(" ", ""):
            raise invalid(
                f"Question {p['QuestionIdentifier']} of assignment {a.assignment_id} is not a FileUploadAnswer.",
                "AWS.MechanicalTurk.InvalidParameterValue",
            )
        return {"FileUploadURL": f"{self.url}/files/{a.assignment_id}/{p['QuestionIdentifier']}"}

    # ----------------------------------------------------------------- the crowd's side (crowd.Market)
    def version(self) -> int:
        with self.lock:
            return self._version

    def tick(self, now: datetime) -> None:
        """Apply what time does: auto-approval, released assignments, expired HITs."""
        with self.lock:
            while self._timers and self._timers[0][0] <= now:
                at, _, kind, ref = heapq.heappop(self._timers)
                if kind == "expire":
                    hit = self.hits[ref]
                    if hit.expiration == at and not hit.disposed:
                        self._notify(hit, "HITExpired", at)
                        self._if_reviewable(hit, at)
                    continue
                a = self.assignments[ref]
                if kind == "deadline" and a.status == "Accepted":
                    a.status = "Abandoned"
                    self._version += 1
                    self._notify(self.hits[a.hit_id], "AssignmentAbandoned", at, a.assignment_id)
                    self._if_reviewable(self.hits[a.hit_id], at)  # an expired HIT's last pending one
                elif kind == "autoapprove" and a.status == "Submitted":
                    hit = self.hits[a.hit_id]
                    # MTurk pays auto-approvals unconditionally; the balance may not block them
                    self._balance -= hit.hit_type.reward + self._fee(hit.hit_type, hit.max_assignments)
                    self._decide(a, "Approved", at)
                    a.approved = at

    def _system_value(self, worker: SimWorker, qt_id: str) -> tuple[bool, int | None, dict[str, str] | None]:
        """A system qualification's value for a worker: standing from before this server plus the
        work decided here."""
        attribute = SYSTEM_QUALIFICATION_TYPES[qt_id].attribute
        if attribute == "locale":
            locale = {"Country": worker.country}
            if worker.subdivision:
                locale["Subdivision"] = worker.subdivision
            return True, None, locale
        if attribute in ("master", "adult"):
            return (True, 1, None) if getattr(worker, attribute) else (False, None, None)
        approved, rejected = self._record.get(worker.worker_id, (0, 0))
        approved, rejected = approved + worker.prior_approved, rejected + worker.prior_rejected
        if attribute == "number_approved":
            return True, approved, None
        decided = approved + rejected
        return True, (100 * approved // decided if decided else 100), None

    def _worker_value(self, worker: SimWorker, qt_id: str) -> tuple[bool, int | None, dict[str, str] | None]:
        if qt_id in SYSTEM_QUALIFICATION_TYPES:
            return self._system_value(worker, qt_id)
        x = self.quals.get((qt_id, worker.worker_id))
        if x and x.status == "Granted":
            return True, x.value, x.locale
        qt = self.qual_types.get(qt_id)
        if x is None and qt and qt.auto_granted and qt.status == "Active" and not qt.deleted:
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

    def _pending_request(self, qt_id: str, worker_id: str) -> bool:
        return any(r.qt_id == qt_id and r.worker_id == worker_id for r in self.qual_requests.values())

    def _may_request(self, worker: SimWorker, qt: QualificationType, now: datetime) -> bool:
        """MTurk lets a worker ask again only after RetryDelayInSeconds, and never if it is unset."""
        if self._pending_request(qt.qt_id, worker.worker_id):
            return False
        last = self._requested.get((qt.qt_id, worker.worker_id))
        return last is None or (qt.retry_delay_s is not None and not within(last, qt.retry_delay_s, now))

    def _test_to_take(self, worker: SimWorker, qt_id: str, now: datetime) -> bool:
        qt = self.qual_types.get(qt_id)
        if not qt or not qt.test or qt.status != "Active" or qt.deleted:
            return False
        if not qt.answer_key:  # the requester grades it: the answers become a QualificationRequest
            return self._may_request(worker, qt, now)
        last = self._attempts.get((qt_id, worker.worker_id))
        return last is None or (qt.retry_delay_s is not None and not within(last, qt.retry_delay_s, now))

    def _request(self, worker: SimWorker, qt: QualificationType, now: datetime, answer: str | None = None) -> None:
        req = QualificationRequest(self._new_id(), qt.qt_id, worker.worker_id, now, qt.test, answer)
        self.qual_requests[req.request_id] = req
        self._requested[(qt.qt_id, worker.worker_id)] = now

    def _eligibility(self, worker: SimWorker, hit: HIT, now: datetime) -> tuple[bool, list[str]]:
        """May the worker accept the HIT now; if not, which tests would help. A requirement guarded
        with DiscoverPreviewAndAccept hides the HIT from whoever misses it (no test is offered
        from it then); a worker who sees a HIT needing a requestable qualification without a test
        asks for it, as on the worker site, and waits for the requester."""
        reqs = hit.hit_type.requirements
        missed = [r for r in reqs if not self._meets(worker, r)]
        if any(r.get("ActionsGuarded") == "DiscoverPreviewAndAccept" for r in missed):
            return False, []
        tests = []
        for r in missed:
            qt = self.qual_types.get(r["QualificationTypeId"])
            if r["Comparator"] == "DoesNotExist" or qt is None:
                continue
            if self._test_to_take(worker, qt.qt_id, now):
                tests.append(qt.qt_id)
            elif (
                not qt.test
                and not qt.auto_granted
                and qt.status == "Active"
                and not qt.deleted
                and (qt.qt_id, worker.worker_id) not in self.quals
                and self._may_request(worker, qt, now)
            ):
                self._request(worker, qt, now)
        return not missed, tests

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
            # the runner hands in its scheduled time; a HIT created since is accepted no earlier
            accepted = max(now, hit.created)
            a = Assignment(
                self._new_id(),
                hit.hit_id,
                worker.worker_id,
                accepted,
                accepted + timedelta(seconds=hit.hit_type.assignment_duration_s),
            )
            self.assignments[a.assignment_id] = a
            hit.assignment_ids.append(a.assignment_id)
            self._timer(a.deadline, "deadline", a.assignment_id)
            self._notify(hit, "AssignmentAccepted", accepted, a.assignment_id)
        return Job(hit.hit_id, a.assignment_id, self._worker_page(hit, a).tasks)  # outside the lock: may fetch

    def _worker_page(self, hit: HIT, a: Assignment) -> q.Page:
        """The page the assignment's worker sees: read once per HIT from its Question; for an
        ExternalQuestion fetched per assignment (with the ids MTurk appends), outside the lock."""
        with self.lock:
            kind, parsed = self._forms[hit.hit_id]
            if kind != q.EXTERNAL:
                if parsed is None:
                    parsed = q.read_hit_question(hit.question)
                    self._forms[hit.hit_id] = (kind, parsed)
                return parsed
            pages: dict[str, q.Page] = parsed if parsed is not None else {}
            self._forms[hit.hit_id] = (kind, pages)
            if a.assignment_id in pages:
                return pages[a.assignment_id]
        ids = {"assignmentId": a.assignment_id, "hitId": hit.hit_id, "workerId": a.worker_id, "turkSubmitTo": self.url}
        page = q.fetch_external_page(hit.question, ids)
        with self.lock:
            return pages.setdefault(a.assignment_id, page)

    def submit(self, worker: SimWorker, job: Job, answers: list[dict[str, Any]], now: datetime) -> None:
        with self.lock:
            if job.kind == "test":
                attempt: TestAttempt = job.handle
                qt = self.qual_types.get(attempt.qt_id)
                if not qt or qt.deleted or not within(attempt.started, qt.test_duration_s or 0, now):
                    return
                xml = q.question_form_answer(job.tasks, answers)
                if not qt.answer_key:  # no key: the requester reads the answers and decides
                    self._request(worker, qt, now, xml)
                    return
                self.quals[(qt.qt_id, worker.worker_id)] = Qualification(
                    qt.qt_id, worker.worker_id, q.score(qt.answer_key, xml), now
                )
                self._version += 1
                return
            a = self.assignments.get(job.handle)
            if a is None or a.status != "Accepted":
                return  # too late: the assignment expired meanwhile
            hit = self.hits[a.hit_id]
            a.answer = q.answer_xml(self._worker_page(hit, a), answers, hit.hit_id, worker.worker_id)
            if self._forms[hit.hit_id][0] == q.EXTERNAL:
                self._forms[hit.hit_id][1].pop(a.assignment_id, None)
            submitted = max(now, a.accepted)  # as in accept: times are monotone per assignment
            a.status, a.submitted, a.submit_seq = "Submitted", submitted, next(self._submit_seq)
            a.auto_approval = submitted + timedelta(seconds=hit.hit_type.auto_approval_delay_s)
            self._timer(a.auto_approval, "autoapprove", a.assignment_id)
            self._notify(hit, "AssignmentSubmitted", submitted, a.assignment_id)
            self.policies.assignment_submitted(a.assignment_id, submitted)  # may approve, reject or extend
            self._if_reviewable(hit, submitted)

    def abandon(self, worker: SimWorker, job: Job, now: datetime) -> None:
        with self.lock:
            if job.kind == "work":
                a = self.assignments.get(job.handle)
                if a and a.status == "Accepted":
                    a.status = "Abandoned"
                    self._version += 1
                    self._notify(self.hits[a.hit_id], "AssignmentReturned", max(now, a.accepted), a.assignment_id)
                    self._if_reviewable(self.hits[a.hit_id], max(now, a.accepted))
