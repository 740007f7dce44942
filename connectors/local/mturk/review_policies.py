"""MTurk's two review policies, run by the local server as the service runs them.

- ``ScoreMyKnownAnswers/2011-09-01`` (``AssignmentReviewPolicy``) runs once per assignment, when it
  is submitted: the worker's answers are compared with the requester's AnswerKey (value sets, after
  stripping whitespace; all values must match), giving ``KnownAnswerScore`` = percent correct, and
  the assignment is approved / rejected / the HIT extended by one assignment by its thresholds.
- ``SimplePlurality/2011-09-01`` (``HITReviewPolicy``) runs each time the HIT becomes Reviewable:
  per question the plurality answer of the (not disregarded) assignments, agreed when its share is
  greater than ``QuestionAgreementThreshold``; the HIT's agreement is the share of agreed
  questions, a worker's the share of agreed questions the worker matched; assignments are approved
  / rejected and the HIT extended (to ``ExtendMaximumAssignments`` in total) by those scores.

Both record results (``ReviewResultDetail``) and actions (``ReviewActionDetail``) in MTurk's shapes
and key names (AWS, "Assignment Review Policies", "HIT Review Policies", "GetReviewResultsForHIT")
for ``ListReviewPolicyResultsForHIT``. Actions act on the server (its approve, reject and extend);
an action its object's state forbids is recorded ``Failed`` with MTurk's error code, one with
nothing left to do (already approved, extension limit reached) ``Succeeded``, as AWS documents.
Parameters are refused where the documented constraints are broken. Where AWS's pages disagree
with each other the parameter tables win: ``RejectIfKnownAnswerScoreIsLessThan`` rejects scores
strictly below it (0 never rejects, 101 always), and ``DisregardAssignmentIfRejected`` is optional
(AWS's own examples leave it out); parameter keys match case-insensitively (AWS's examples spell
``QuestionIDs``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from lxml import etree

from connectors.local.mturk import questions as q
from connectors.local.mturk.wire import MTurkError, invalid

ASSIGNMENT_POLICY = "ScoreMyKnownAnswers/2011-09-01"
HIT_POLICY = "SimplePlurality/2011-09-01"
MAX_QUESTION_IDS = 15
MAX_COMPARED_ANSWER = 256  # "Answers that are longer than 256 characters are not used"
MAX_KEY_BYTES = 255
INVALID_STATE = "AWS.MechanicalTurk.InvalidAssignmentState"
INVALID_STATE_TEXT = "Assignment was in an invalid state for this operation."
TRUE, FALSE = {"t", "true", "1", "yes"}, {"f", "false", "0", "no"}

Answer = frozenset[str]


# --------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class KnownAnswers:
    answer_key: dict[str, Answer]
    approve_at: int | None = None
    approve_reason: str | None = None
    reject_below: int | None = None
    reject_reason: str = ""
    extend_below: int | None = None
    extend_max: int = 5
    extend_seconds: int = 0


@dataclass(frozen=True)
class Plurality:
    question_ids: tuple[str, ...]
    threshold: int
    disregard_rejected: bool = False
    disregard_known_below: int | None = None
    extend_below: int | None = None
    extend_max: int | None = None
    extend_seconds: int | None = None
    approve_at: int | None = None
    reject_below: int | None = None
    reject_reason: str = ""


class _Params:
    """A policy's Parameters by key (case-insensitive), refusing keys the policy does not take."""

    def __init__(self, slot: str, policy: dict[str, Any], allowed: tuple[str, ...]):
        self.slot = slot
        names = {a.lower(): a for a in allowed}
        self.values: dict[str, dict[str, Any]] = {}
        for p in policy.get("Parameters") or []:
            key = p.get("Key")
            if not key or key.lower() not in names:
                raise invalid(f"{slot}: {key!r} is not a parameter of {policy['PolicyName']}")
            name = names[key.lower()]
            if name in self.values:
                raise invalid(f"{slot}: parameter {name} is given more than once")
            self.values[name] = p

    def strings(self, name: str) -> list[str] | None:
        p = self.values.get(name)
        return None if p is None else [v.strip() for v in p.get("Values") or []]

    def string(self, name: str) -> str | None:
        values = self.strings(name)
        if values is None:
            return None
        if len(values) != 1:
            raise invalid(f"{self.slot}: parameter {name} takes exactly one value")
        return values[0]

    def integer(self, name: str, low: int | None = None, high: int | None = None) -> int | None:
        text = self.string(name)
        if text is None:
            return None
        try:
            value = int(text)
        except ValueError as e:
            raise invalid(f"{self.slot}: parameter {name} must be an integer, not {text!r}") from e
        if (low is not None and value < low) or (high is not None and value > high):
            raise invalid(f"{self.slot}: parameter {name} must be between {low} and {high}")
        return value

    def boolean(self, name: str) -> bool | None:
        text = self.string(name)
        if text is None:
            return None
        if text.lower() not in TRUE | FALSE:
            raise invalid(f"{self.slot}: parameter {name} must be T or F, not {text!r}")
        return text.lower() in TRUE


def _check_name(slot: str, policy: dict[str, Any], expected: str) -> None:
    if policy["PolicyName"] != expected:
        raise invalid(f"{slot}: PolicyName {policy['PolicyName']!r} is not valid here; use {expected}")


def parse_assignment_policy(policy: dict[str, Any]) -> KnownAnswers:
    slot = "AssignmentReviewPolicy"
    _check_name(slot, policy, ASSIGNMENT_POLICY)
    p = _Params(
        slot,
        policy,
        (
            "AnswerKey",
            "ApproveIfKnownAnswerScoreIsAtLeast",
            "ApproveReason",
            "RejectIfKnownAnswerScoreIsLessThan",
            "RejectReason",
            "ExtendIfKnownAnswerScoreIsLessThan",
            "ExtendMaximumAssignments",
            "ExtendMinimumTimeInSeconds",
        ),
    )
    entries = (p.values.get("AnswerKey") or {}).get("MapEntries") or []
    if not entries:
        raise invalid(f"{slot}: {ASSIGNMENT_POLICY} needs an AnswerKey with at least one MapEntry")
    key: dict[str, Answer] = {}
    for e in entries:
        qid = (e.get("Key") or "").strip()
        if not qid or len(qid.encode()) > MAX_KEY_BYTES:
            raise invalid(f"{slot}: every AnswerKey MapEntry needs a Key of 1 to {MAX_KEY_BYTES} bytes")
        key[qid] = frozenset(v.strip() for v in e.get("Values") or [])
    return KnownAnswers(
        key,
        approve_at=p.integer("ApproveIfKnownAnswerScoreIsAtLeast", 0, 101),
        approve_reason=p.string("ApproveReason"),
        reject_below=p.integer("RejectIfKnownAnswerScoreIsLessThan", 0, 101),
        reject_reason=p.string("RejectReason") or "",
        extend_below=p.integer("ExtendIfKnownAnswerScoreIsLessThan", 0, 101),
        extend_max=p.integer("ExtendMaximumAssignments", 2, 25) or 5,
        extend_seconds=p.integer("ExtendMinimumTimeInSeconds", 60, 31536000) or 0,
    )


def parse_hit_policy(policy: dict[str, Any]) -> Plurality:
    slot = "HITReviewPolicy"
    _check_name(slot, policy, HIT_POLICY)
    p = _Params(
        slot,
        policy,
        (
            "QuestionIds",
            "QuestionAgreementThreshold",
            "DisregardAssignmentIfRejected",
            "DisregardAssignmentIfKnownAnswerScoreIsLessThan",
            "ExtendIfHITAgreementScoreIsLessThan",
            "ExtendMaximumAssignments",
            "ExtendMinimumTimeInSeconds",
            "ApproveIfWorkerAgreementScoreIsAtLeast",
            "RejectIfWorkerAgreementScoreIsLessThan",
            "RejectReason",
        ),
    )
    # "a comma-separated list of questionIds": one value per id, or ids joined with commas
    ids = [i.strip() for v in p.strings("QuestionIds") or [] for i in v.split(",") if i.strip()]
    if not ids:
        raise invalid(f"{slot}: {HIT_POLICY} needs QuestionIds")
    if len(ids) > MAX_QUESTION_IDS:
        raise invalid(f"{slot}: QuestionIds can name up to {MAX_QUESTION_IDS} questions")
    threshold = p.integer("QuestionAgreementThreshold")  # "Constraints: none"
    if threshold is None:
        raise invalid(f"{slot}: {HIT_POLICY} needs QuestionAgreementThreshold")
    extend_below = p.integer("ExtendIfHITAgreementScoreIsLessThan", 1, 100)
    extend_max = p.integer("ExtendMaximumAssignments", 1, 1_000_000)
    extend_seconds = p.integer("ExtendMinimumTimeInSeconds", 60, 31536000)
    if extend_below is not None and (extend_max is None or extend_seconds is None):
        raise invalid(
            f"{slot}: ExtendIfHITAgreementScoreIsLessThan needs ExtendMaximumAssignments and "
            "ExtendMinimumTimeInSeconds"
        )
    return Plurality(
        tuple(dict.fromkeys(ids)),
        threshold,
        disregard_rejected=bool(p.boolean("DisregardAssignmentIfRejected")),
        disregard_known_below=p.integer("DisregardAssignmentIfKnownAnswerScoreIsLessThan"),
        extend_below=extend_below,
        extend_max=extend_max,
        extend_seconds=extend_seconds,
        approve_at=p.integer("ApproveIfWorkerAgreementScoreIsAtLeast"),
        reject_below=p.integer("RejectIfWorkerAgreementScoreIsLessThan"),
        reject_reason=p.string("RejectReason") or "",
    )


# --------------------------------------------------------------------------- records
@dataclass
class Result:
    action_id: str
    subject_id: str
    subject_type: str
    key: str
    value: str
    question_id: str | None = None

    def out(self) -> dict[str, Any]:
        return {
            "ActionId": self.action_id,
            "SubjectId": self.subject_id,
            "SubjectType": self.subject_type,
            "QuestionId": self.question_id,
            "Key": self.key,
            "Value": self.value,
        }


@dataclass
class Action:
    action_id: str
    name: str
    target_id: str
    target_type: str
    status: str
    complete_time: datetime
    result: str
    error_code: str | None = None

    def out(self) -> dict[str, Any]:
        return {
            "ActionId": self.action_id,
            "ActionName": self.name,
            "TargetId": self.target_id,
            "TargetType": self.target_type,
            "Status": self.status,
            "CompleteTime": self.complete_time,
            "Result": self.result,
            "ErrorCode": self.error_code,
        }


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)


@dataclass
class HITReview:
    """One HIT's policies, what they found (in the order found) and what they did."""

    known: KnownAnswers | None
    plurality: Plurality | None
    assignment_report: Report = field(default_factory=Report)
    hit_report: Report = field(default_factory=Report)
    scores: dict[str, int] = field(default_factory=dict)  # assignment -> KnownAnswerScore


def read_answers(answer_xml: str | None) -> dict[str, tuple[Answer, int]]:
    """An assignment's answers by QuestionIdentifier: the value set (selections, or the free text;
    checkboxes a plain form posted as ``a|b`` count as their values) and the answer's length."""
    if not answer_xml:
        return {}
    ns = f"{{{q.NS_ANSWERS}}}"
    out: dict[str, tuple[Answer, int]] = {}
    for a in etree.fromstring(answer_xml.encode()).iter(ns + "Answer"):
        qid = (a.findtext(ns + "QuestionIdentifier") or "").strip()
        selections = [(s.text or "").strip() for s in a.iter(ns + "SelectionIdentifier")]
        text = a.findtext(ns + "FreeText")
        if selections or text is None:
            values = frozenset(selections)
            size = sum(len(s) for s in selections)
        else:
            text = text.strip()
            values, size = frozenset([text] if text else []), len(text)
        out[qid] = (values, size)
    return out


def _matches(given: Answer, wanted: Answer) -> bool:
    if given == wanted:
        return True
    # a plain form posts several checked boxes of one name as one value joined with "|"
    return len(given) == 1 and len(wanted) > 1 and frozenset(v.strip() for v in next(iter(given)).split("|")) == wanted


def _shown(answer: Answer) -> str:
    return "|".join(sorted(answer))


# --------------------------------------------------------------------------- running the policies
class ReviewPolicies:
    """The review policies of a server's HITs. The server calls ``attach`` on CreateHIT,
    ``assignment_submitted`` after a submit and ``hit_reviewable`` when a HIT becomes Reviewable,
    all under its lock; the actions go through the server's own approve, reject and extend."""

    def __init__(self, server: Any):
        self.server = server
        self.hits: dict[str, HITReview] = {}

    @staticmethod
    def check(p: dict[str, Any]) -> tuple[KnownAnswers | None, Plurality | None]:
        """CreateHIT's policies, refused as MTurk refuses them (before the HIT exists)."""
        known = parse_assignment_policy(p["AssignmentReviewPolicy"]) if p.get("AssignmentReviewPolicy") else None
        plurality = parse_hit_policy(p["HITReviewPolicy"]) if p.get("HITReviewPolicy") else None
        return known, plurality

    def attach(self, hit_id: str, policies: tuple[KnownAnswers | None, Plurality | None]) -> None:
        if policies[0] or policies[1]:
            self.hits[hit_id] = HITReview(*policies)

    # ------------------------------------------------------------- actions on the server
    def _action(self, report: Report, name: str, target: str, kind: str, now: datetime, result: str,
                error: str | None = None) -> Action:
        action = Action(self.server._new_id(), name, target, kind, "Failed" if error else "Succeeded", now, result,
                        error)
        report.actions.append(action)
        return action

    def _approve(self, report: Report, aid: str, reason: str | None, now: datetime) -> None:
        a = self.server.assignments[aid]
        if a.status == "Approved":
            self._action(report, "approve", aid, "Assignment", now, "Already approved")
        elif a.status != "Submitted":
            self._action(report, "approve", aid, "Assignment", now, INVALID_STATE_TEXT, INVALID_STATE)
        else:
            try:
                self.server._approve(a, now, reason)
            except MTurkError as e:
                self._action(report, "approve", aid, "Assignment", now, e.message, e.turk_code)
                return
            self._action(report, "approve", aid, "Assignment", now, "Approved")

    def _reject(self, report: Report, aid: str, reason: str, now: datetime) -> None:
        a = self.server.assignments[aid]
        if a.status == "Rejected":
            self._action(report, "reject", aid, "Assignment", now, "Already rejected")
        elif a.status != "Submitted":
            self._action(report, "reject", aid, "Assignment", now, INVALID_STATE_TEXT, INVALID_STATE)
        else:
            self.server._decide(a, "Rejected", now)
            a.rejected, a.feedback = now, reason
            self._action(report, "reject", aid, "Assignment", now, "Rejected")

    def _extend(self, report: Report, hit_id: str, maximum: int, seconds: int, now: datetime) -> None:
        """One more assignment, up to ``maximum`` in all (and never from under 10 to 10 or more,
        as MTurk extends), with at least ``seconds`` left to do it."""
        server = self.server
        hit = server.hits[hit_id]
        if hit.max_assignments >= maximum or hit.max_assignments < 10 <= hit.max_assignments + 1:
            self._action(report, "extend", hit_id, "HIT", now,
                         f"Not extended: the HIT already has {hit.max_assignments} assignments, the most allowed")
            return
        cost = hit.hit_type.reward + server._fee(hit.hit_type, hit.max_assignments)
        if cost > server.balance():
            self._action(report, "extend", hit_id, "HIT", now,
                         "This Requester has insufficient funds in their account to complete this transaction.",
                         "AWS.MechanicalTurk.InsufficientFunds")
            return
        hit.max_assignments += 1
        hit.reviewing = False
        until = now + timedelta(seconds=seconds)
        if until > hit.expiration:
            hit.expiration = until
            server._timer(until, "expire", hit_id)
        server._version += 1
        server._notify(hit, "HITExtended", now)
        self._action(report, "extend", hit_id, "HIT", now, f"Extended to {hit.max_assignments} assignments")

    # ------------------------------------------------------------- ScoreMyKnownAnswers
    def assignment_submitted(self, aid: str, now: datetime) -> None:
        a = self.server.assignments[aid]
        review = self.hits.get(a.hit_id)
        if review is None or review.known is None:
            return
        policy, report = review.known, review.assignment_report
        given = read_answers(a.answer)
        correct = {qid: _matches(given.get(qid, (frozenset(), 0))[0], want) for qid, want in policy.answer_key.items()}
        score = 100 * sum(correct.values()) // len(correct)
        review.scores[aid] = score
        n = len(correct)
        act = self._action(report, "review", aid, "Assignment", now,
                           f"Reviewed {n} known answer{'s' if n != 1 else ''}; {sum(correct.values())}/{n} correct")
        for qid, ok in correct.items():
            report.results.append(Result(act.action_id, aid, "Assignment", "KnownAnswerCorrect", str(int(ok)), qid))
        report.results.append(Result(act.action_id, aid, "Assignment", "KnownAnswerScore", str(score)))
        if policy.approve_at is not None and score >= policy.approve_at:
            self._approve(report, aid, policy.approve_reason, now)
        if policy.reject_below is not None and score < policy.reject_below:
            self._reject(report, aid, policy.reject_reason, now)
        if policy.extend_below is not None and score < policy.extend_below:
            self._extend(report, a.hit_id, policy.extend_max, policy.extend_seconds, now)

    # ------------------------------------------------------------- SimplePlurality
    def hit_reviewable(self, hit_id: str, now: datetime) -> None:
        review = self.hits.get(hit_id)
        if review is None or review.plurality is None:
            return
        policy, report = review.plurality, review.hit_report
        server = self.server
        done = [
            server.assignments[aid]
            for aid in server.hits[hit_id].assignment_ids
            if server.assignments[aid].status in ("Submitted", "Approved", "Rejected")
        ]
        answers = {a.assignment_id: read_answers(a.answer) for a in done}

        def counted(a: Any) -> bool:
            if policy.disregard_rejected and a.status == "Rejected":
                return False
            known = review.scores.get(a.assignment_id)
            return policy.disregard_known_below is None or known is None or known >= policy.disregard_known_below

        voters = [a.assignment_id for a in done if counted(a)]
        act = self._action(report, "review", hit_id, "HIT", now, "")
        agreed: dict[str, Answer] = {}
        evaluated = 0
        for qid in policy.question_ids:
            votes = [
                answers[aid][qid][0]
                for aid in voters
                if qid in answers[aid] and answers[aid][qid][1] <= MAX_COMPARED_ANSWER
            ]
            if not votes:
                continue
            evaluated += 1
            ranked = Counter(votes).most_common(2)
            share = 100 * ranked[0][1] // len(votes)
            found = share > policy.threshold and (len(ranked) == 1 or ranked[1][1] < ranked[0][1])
            report.results.append(Result(act.action_id, hit_id, "HIT", "AgreedAnswerFound", str(found).lower(), qid))
            if found:
                agreed[qid] = ranked[0][0]
                report.results.append(Result(act.action_id, hit_id, "HIT", "AgreedAnswer", _shown(ranked[0][0]), qid))
                report.results.append(Result(act.action_id, hit_id, "HIT", "AnswerAgreementScore", str(share), qid))
        worker_scores: dict[str, int] = {}
        for a in done:
            mine = answers[a.assignment_id]
            right = sum(qid in mine and mine[qid][0] == value for qid, value in agreed.items())
            aid = a.assignment_id
            report.results.append(Result(act.action_id, aid, "Assignment", "PluralityAnswersCorrect", str(right)))
            report.results.append(
                Result(act.action_id, aid, "Assignment", "PluralityAnswersIncorrect", str(len(agreed) - right))
            )
            if agreed:  # "a question without an agreed-upon answer is disregarded"
                worker_scores[aid] = 100 * right // len(agreed)
                report.results.append(
                    Result(act.action_id, aid, "Assignment", "WorkerAgreementScore", str(worker_scores[aid]))
                )
        hit_score = 100 * len(agreed) // evaluated if evaluated else None
        if hit_score is not None:
            report.results.append(Result(act.action_id, hit_id, "HIT", "HitAgreementScore", str(hit_score)))
        act.result = (
            f"Reviewed {len(voters)} of {len(done)} assignments; {len(agreed)}/{evaluated} questions agreed"
        )
        for aid, score in worker_scores.items():
            if policy.approve_at is not None and score >= policy.approve_at:
                self._approve(report, aid, None, now)
            if policy.reject_below is not None and score < policy.reject_below:
                self._reject(report, aid, policy.reject_reason, now)
        if policy.extend_below is not None and hit_score is not None and hit_score < policy.extend_below:
            assert policy.extend_max is not None and policy.extend_seconds is not None
            self._extend(report, hit_id, policy.extend_max, policy.extend_seconds, now)

    # ------------------------------------------------------------- ListReviewPolicyResultsForHIT
    def listing(self, hit_id: str, p: dict[str, Any]) -> dict[str, Any]:
        """The answer to ListReviewPolicyResultsForHIT: the requested levels' policies (by name),
        results and actions in the order they happened, paged with the server's paging helper over
        the rows of both reports together."""
        review = self.hits.get(hit_id)
        levels = set(p.get("PolicyLevels") or ("Assignment", "HIT"))
        want_results, want_actions = p.get("RetrieveResults", True), p.get("RetrieveActions", True)
        reports = {}
        if review is not None:
            if review.known is not None and "Assignment" in levels:
                reports["Assignment"] = review.assignment_report
            if review.plurality is not None and "HIT" in levels:
                reports["HIT"] = review.hit_report
        rows: list[tuple[str, str, Any]] = []
        for level, report in reports.items():
            rows += [(level, "ReviewResults", r) for r in report.results] if want_results else []
            rows += [(level, "ReviewActions", x) for x in report.actions] if want_actions else []
        chunk, token = self.server._page(rows, p)
        out: dict[str, Any] = {"HITId": hit_id, "NextToken": token}
        for level in reports:
            body: dict[str, list[Any]] = {}
            if want_results:
                body["ReviewResults"] = [r.out() for lv, kind, r in chunk if lv == level and kind == "ReviewResults"]
            if want_actions:
                body["ReviewActions"] = [x.out() for lv, kind, x in chunk if lv == level and kind == "ReviewActions"]
            policy = ASSIGNMENT_POLICY if level == "Assignment" else HIT_POLICY
            out[f"{level}ReviewPolicy"] = {"PolicyName": policy}
            out[f"{level}ReviewReport"] = body
        return out
