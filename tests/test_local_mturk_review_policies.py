"""MTurk's review policies on the local server, through plain boto3: ScoreMyKnownAnswers/2011-09-01
(assignment level, on submit) and SimplePlurality/2011-09-01 (HIT level, when the HIT becomes
Reviewable) approve, reject and extend on the server, and ListReviewPolicyResultsForHIT lists what
they found and did. The crowd answers from an oracle that says, per worker, what each answers."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from mturk_helpers import client, html_question

from connectors.local import start_local
from connectors.local.mturk import wire

FORM_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2017-11-06/QuestionForm.xsd"
KNOWN = "ScoreMyKnownAnswers/2011-09-01"
PLURALITY = "SimplePlurality/2011-09-01"


def question_form(*qids: str) -> str:
    body = "".join(
        f"<Question><QuestionIdentifier>{qid}</QuestionIdentifier><IsRequired>true</IsRequired>"
        f"<QuestionContent><Text>Pick for {qid}</Text></QuestionContent><AnswerSpecification><SelectionAnswer>"
        "<StyleSuggestion>radiobutton</StyleSuggestion><Selections>"
        + "".join(f"<Selection><SelectionIdentifier>{s}</SelectionIdentifier><Text>{s}</Text></Selection>"
                  for s in "abc")
        + "</Selections></SelectionAnswer></AnswerSpecification></Question>"
        for qid in qids
    )
    return f'<QuestionForm xmlns="{FORM_NS}">{body}</QuestionForm>'


def hit_args(n: int, *qids: str, **policies: Any) -> dict[str, Any]:
    return dict(
        Title="Pick letters",
        Description="Pick the right letter",
        Reward="0.10",
        AssignmentDurationInSeconds=600,
        AutoApprovalDelayInSeconds=7 * 86400,
        LifetimeInSeconds=86400,
        MaxAssignments=n,
        Question=question_form(*qids),
        **policies,
    )


def param(key: str, *values: str) -> dict[str, Any]:
    return {"Key": key, "Values": list(values)}


def answer_key(**answers: str) -> dict[str, Any]:
    return {"Key": "AnswerKey", "MapEntries": [{"Key": k, "Values": [v]} for k, v in answers.items()]}


class Plan:
    """The oracle: what each planned worker answers per QuestionForm question, or per field of a
    plain form (one task with a field per form field)."""

    def __init__(self) -> None:
        self.answers: dict[str, dict[str, Any]] = {}

    def __call__(self, task, worker, rng) -> dict[str, Any] | None:
        mine = self.answers.get(worker.worker_id) or {}
        if task.item in mine:
            return {"answer": mine[task.item]}
        return {f.name: mine[f.name] for f in task.fields if f.name in mine} or None


@pytest.fixture
def market():
    def start(workers: int, plan: list[dict[str, str]]):
        oracle = Plan()
        mp = start_local("mturk", workers=workers, seed=7, oracle=oracle)
        oracle.answers = {w.worker_id: plan[i % len(plan)] for i, w in enumerate(mp.crowd.workers)}
        opened.append(mp)
        return mp, client(mp.url), oracle.answers

    opened: list[Any] = []
    yield start
    for mp in opened:
        mp.stop()


def done(mturk, hit_id: str) -> list[dict[str, Any]]:
    return mturk.list_assignments_for_hit(HITId=hit_id, MaxResults=100)["Assignments"]


def review(mturk, hit_id: str, **kw: Any) -> dict[str, Any]:
    return mturk.list_review_policy_results_for_hit(HITId=hit_id, **{"MaxResults": 100, **kw})


def results(report: dict[str, Any], key: str) -> dict[tuple[str, str | None], str]:
    return {(r["SubjectId"], r.get("QuestionId")): r["Value"] for r in report["ReviewResults"] if r["Key"] == key}


def actions(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [a for a in report["ReviewActions"] if a["ActionName"] == name]


# --------------------------------------------------------------------------- ScoreMyKnownAnswers
def test_known_answers_approve_the_right_and_reject_the_wrong_on_submit(market):
    right, half = {"Q1": "a", "Q2": "b", "Q3": "c"}, {"Q1": "a", "Q2": "c", "Q3": "c"}
    mp, mturk, plan = market(4, [right, half])
    policy = {"PolicyName": KNOWN, "Parameters": [
        answer_key(Q1="a", Q2="b"),
        param("ApproveIfKnownAnswerScoreIsAtLeast", "100"),
        param("ApproveReason", "all gold right"),
        param("RejectIfKnownAnswerScoreIsLessThan", "100"),
        param("RejectReason", "missed a known answer"),
    ]}
    balance = mturk.get_account_balance()["AvailableBalance"]
    hit_id = mturk.create_hit(**hit_args(4, "Q1", "Q2", "Q3", AssignmentReviewPolicy=policy))["HIT"]["HITId"]
    mp.advance(3 * 3600)

    got = done(mturk, hit_id)
    assert len(got) == 4
    for a in got:
        good = plan[a["WorkerId"]] is right
        assert a["AssignmentStatus"] == ("Approved" if good else "Rejected")
        assert a["RequesterFeedback"] == ("all gold right" if good else "missed a known answer")
    assert mturk.get_account_balance()["AvailableBalance"] != balance  # the policy's approvals were paid

    listed = review(mturk, hit_id)
    assert listed["AssignmentReviewPolicy"]["PolicyName"] == KNOWN and "HITReviewPolicy" not in listed
    report = listed["AssignmentReviewReport"]
    by_id = {a["AssignmentId"]: plan[a["WorkerId"]] is right for a in got}
    assert results(report, "KnownAnswerScore") == {(aid, None): "100" if ok else "50" for aid, ok in by_id.items()}
    correct = results(report, "KnownAnswerCorrect")
    on_q2 = {k: v for k, v in correct.items() if k[1] == "Q2"}
    assert on_q2 == {(aid, "Q2"): str(int(ok)) for aid, ok in by_id.items()}
    assert all(correct[(aid, "Q1")] == "1" for aid in by_id) and not any(k[1] == "Q3" for k in correct)
    assert {a["TargetId"] for a in actions(report, "approve")} == {aid for aid, ok in by_id.items() if ok}
    assert {a["TargetId"] for a in actions(report, "reject")} == {aid for aid, ok in by_id.items() if not ok}
    assert all(a["Status"] == "Succeeded" and a["TargetType"] == "Assignment" for a in report["ReviewActions"])
    reviewed = {a["ActionId"]: a["TargetId"] for a in actions(report, "review")}
    assert all(reviewed[r["ActionId"]] == r["SubjectId"] for r in report["ReviewResults"])


def test_an_action_the_assignment_state_forbids_is_recorded_failed_with_mturks_error_code(market):
    mp, mturk, _ = market(2, [{"Q1": "a", "Q2": "c"}])
    policy = {"PolicyName": KNOWN, "Parameters": [
        answer_key(Q1="a", Q2="b"),
        param("ApproveIfKnownAnswerScoreIsAtLeast", "50"),  # overlaps the rejection below: approval comes first
        param("RejectIfKnownAnswerScoreIsLessThan", "100"),
    ]}
    hit_id = mturk.create_hit(**hit_args(1, "Q1", "Q2", AssignmentReviewPolicy=policy))["HIT"]["HITId"]
    mp.advance(3 * 3600)

    [a] = done(mturk, hit_id)
    assert a["AssignmentStatus"] == "Approved"
    report = review(mturk, hit_id)["AssignmentReviewReport"]
    [reject] = actions(report, "reject")
    assert reject["Status"] == "Failed" and reject["ErrorCode"] == "AWS.MechanicalTurk.InvalidAssignmentState"
    assert [x["Status"] for x in actions(report, "approve")] == ["Succeeded"]


def test_known_answers_extend_the_hit_up_to_its_maximum(market):
    wrong = {"Q1": "c"}
    mp, mturk, _ = market(5, [wrong])
    policy = {"PolicyName": KNOWN, "Parameters": [
        answer_key(Q1="a"),
        param("RejectIfKnownAnswerScoreIsLessThan", "100"),
        param("ExtendIfKnownAnswerScoreIsLessThan", "100"),
        param("ExtendMaximumAssignments", "3"),
        param("ExtendMinimumTimeInSeconds", "3600"),
    ]}
    hit_id = mturk.create_hit(**hit_args(1, "Q1", AssignmentReviewPolicy=policy))["HIT"]["HITId"]
    mp.advance(3 * 3600)

    hit = mturk.get_hit(HITId=hit_id)["HIT"]
    assert hit["MaxAssignments"] == 3 and hit["HITStatus"] == "Reviewable"
    got = done(mturk, hit_id)
    assert [a["AssignmentStatus"] for a in got] == ["Rejected"] * 3
    extends = actions(review(mturk, hit_id)["AssignmentReviewReport"], "extend")
    assert [a["Result"] for a in extends[:2]] == ["Extended to 2 assignments", "Extended to 3 assignments"]
    assert len(extends) == 3 and extends[2]["Result"].startswith("Not extended") and extends[2]["Status"] == "Succeeded"
    assert all(a["TargetId"] == hit_id and a["TargetType"] == "HIT" for a in extends)


PLAIN_FORM = """<form method="post" action="https://www.mturk.com/mturk/externalSubmit">
  <input type="hidden" name="assignmentId" value="">
  <label><input type="radio" name="fluent" value="yes"> yes</label>
  <label><input type="radio" name="fluent" value="no"> no</label>
  <label><input type="checkbox" name="issues" value="grammar"> grammar</label>
  <label><input type="checkbox" name="issues" value="style"> style</label>
  <input type="submit" value="Submit"></form>"""


def test_known_answers_score_a_plain_form_field_by_field_with_checkboxes_as_value_sets(market):
    both, one = {"fluent": "no", "issues": ["grammar", "style"]}, {"fluent": "no", "issues": ["grammar"]}
    mp, mturk, plan = market(4, [both, one])
    policy = {"PolicyName": KNOWN, "Parameters": [
        {"Key": "AnswerKey", "MapEntries": [{"Key": "fluent", "Values": [" no "]},
                                            {"Key": "issues", "Values": ["style", "grammar"]}]},
        param("ApproveIfKnownAnswerScoreIsAtLeast", "100"),
        param("RejectIfKnownAnswerScoreIsLessThan", "100"),
    ]}
    question = html_question(f"<!DOCTYPE html><html><body>{PLAIN_FORM}</body></html>", frame_height=0)
    hit_id = mturk.create_hit(**{**hit_args(4), "Question": question, "AssignmentReviewPolicy": policy})["HIT"]["HITId"]
    mp.advance(3 * 3600)

    got = done(mturk, hit_id)
    assert len(got) == 4 and all("<FreeText>grammar" in a["Answer"] for a in got)
    assert {a["AssignmentStatus"] for a in got if plan[a["WorkerId"]] is both} == {"Approved"}
    assert {a["AssignmentStatus"] for a in got if plan[a["WorkerId"]] is one} == {"Rejected"}
    report = review(mturk, hit_id)["AssignmentReviewReport"]
    assert sorted(results(report, "KnownAnswerScore").values()) == ["100", "100", "50", "50"]
    # the form's own field names come back as QuestionIds (the model's EntityId pattern is not MTurk's answer)
    assert {qid for _, qid in results(report, "KnownAnswerCorrect")} == {"fluent", "issues"}


def test_responses_keep_requester_ids_the_model_pattern_would_refuse_but_not_other_mistakes():
    shape = wire.operation_model("ListReviewPolicyResultsForHIT").output_shape
    detail = {"ActionId": "A1", "SubjectId": "S1", "SubjectType": "Assignment", "QuestionId": "Question_2",
              "Key": "KnownAnswerCorrect", "Value": "1"}
    report = {"AssignmentReviewReport": {"ReviewResults": [detail]}}
    assert wire.to_wire(shape, report)["AssignmentReviewReport"]["ReviewResults"][0]["QuestionId"] == "Question_2"
    action = {"ActionId": "A1", "ActionName": "approve", "Status": "Done"}  # not a ReviewActionStatus
    with pytest.raises(TypeError, match="must be one of"):
        wire.to_wire(shape, {"HITReviewReport": {"ReviewActions": [action]}})
    request = wire.operation_model("ListReviewPolicyResultsForHIT").input_shape
    with pytest.raises(wire.MTurkError, match="does not match"):  # requests are still held to the patterns
        wire.validate(request, {"HITId": "not-an-id"})


# --------------------------------------------------------------------------- SimplePlurality
def test_plurality_approves_agreeing_workers_and_rejects_the_odd_one_when_the_hit_is_reviewable(market):
    a, b, odd = {"Q1": "a", "Q2": "b"}, {"Q1": "a", "Q2": "b"}, {"Q1": "a", "Q2": "c"}
    mp, mturk, plan = market(3, [a, b, odd])
    policy = {"PolicyName": PLURALITY, "Parameters": [
        param("QuestionIds", "Q1", "Q2"),
        param("QuestionAgreementThreshold", "50"),
        param("ApproveIfWorkerAgreementScoreIsAtLeast", "100"),
        param("RejectIfWorkerAgreementScoreIsLessThan", "60"),
        param("RejectReason", "disagreed with the others"),
    ]}
    hit_id = mturk.create_hit(**hit_args(3, "Q1", "Q2", HITReviewPolicy=policy))["HIT"]["HITId"]
    mp.advance(3 * 3600)

    got = done(mturk, hit_id)
    assert len(got) == 3
    for x in got:
        is_odd = plan[x["WorkerId"]] is odd
        assert x["AssignmentStatus"] == ("Rejected" if is_odd else "Approved")
        assert x.get("RequesterFeedback") == ("disagreed with the others" if is_odd else None)
    listed = review(mturk, hit_id)
    assert listed["HITReviewPolicy"]["PolicyName"] == PLURALITY and "AssignmentReviewReport" not in listed
    report = listed["HITReviewReport"]
    assert results(report, "AgreedAnswer") == {(hit_id, "Q1"): "a", (hit_id, "Q2"): "b"}
    assert results(report, "AnswerAgreementScore") == {(hit_id, "Q1"): "100", (hit_id, "Q2"): "66"}
    assert results(report, "HitAgreementScore") == {(hit_id, None): "100"}
    odd_id = next(x["AssignmentId"] for x in got if plan[x["WorkerId"]] is odd)
    scores = results(report, "WorkerAgreementScore")
    assert scores == {(x["AssignmentId"], None): "50" if x["AssignmentId"] == odd_id else "100" for x in got}
    assert [x["TargetId"] for x in actions(report, "reject")] == [odd_id]
    assert len(actions(report, "approve")) == 2 and len(actions(report, "review")) == 1


def test_plurality_extends_a_hit_without_agreement_and_runs_again_when_it_is_reviewable_again(market):
    mp, mturk, _ = market(3, [{"Q1": "a"}, {"Q1": "b"}, {"Q1": "c"}])
    policy = {"PolicyName": PLURALITY, "Parameters": [
        param("QuestionIDs", "Q1"),  # AWS's own examples spell it so
        param("QuestionAgreementThreshold", "50"),
        param("ExtendIfHITAgreementScoreIsLessThan", "100"),
        param("ExtendMaximumAssignments", "3"),
        param("ExtendMinimumTimeInSeconds", "3600"),
    ]}
    args = hit_args(2, "Q1")
    hit_type = mturk.create_hit_type(**{k: args.pop(k) for k in ("Title", "Description", "Reward",
                                                                 "AssignmentDurationInSeconds")})["HITTypeId"]
    hit_id = mturk.create_hit_with_hit_type(HITTypeId=hit_type, HITReviewPolicy=policy, **{
        k: args[k] for k in ("LifetimeInSeconds", "MaxAssignments", "Question")})["HIT"]["HITId"]
    mp.advance(3 * 3600)

    assert mturk.get_hit(HITId=hit_id)["HIT"]["MaxAssignments"] == 3
    assert len(done(mturk, hit_id)) == 3
    report = review(mturk, hit_id, PolicyLevels=["HIT"])["HITReviewReport"]
    assert len(actions(report, "review")) == 2  # once per time the HIT became Reviewable
    assert [r["Value"] for r in report["ReviewResults"] if r["Key"] == "AgreedAnswerFound"] == ["false", "false"]
    assert [r["Value"] for r in report["ReviewResults"] if r["Key"] == "HitAgreementScore"] == ["0", "0"]
    extends = actions(report, "extend")
    assert extends[0]["Result"] == "Extended to 3 assignments" and extends[1]["Result"].startswith("Not extended")


def test_plurality_disregards_assignments_that_failed_the_known_answers(market):
    good, bad = {"Q1": "a", "Q2": "b"}, {"Q1": "c", "Q2": "c"}
    mp, mturk, plan = market(3, [good, bad, bad])
    policies = dict(
        AssignmentReviewPolicy={"PolicyName": KNOWN, "Parameters": [
            answer_key(Q1="a"), param("RejectIfKnownAnswerScoreIsLessThan", "100")]},
        HITReviewPolicy={"PolicyName": PLURALITY, "Parameters": [
            param("QuestionIds", "Q2"),
            param("QuestionAgreementThreshold", "50"),
            param("DisregardAssignmentIfKnownAnswerScoreIsLessThan", "100"),
            param("ApproveIfWorkerAgreementScoreIsAtLeast", "100")]},
    )
    hit_id = mturk.create_hit(**hit_args(3, "Q1", "Q2", **policies))["HIT"]["HITId"]
    mp.advance(3 * 3600)

    got = done(mturk, hit_id)
    assert sorted(x["AssignmentStatus"] for x in got) == ["Approved", "Rejected", "Rejected"]
    listed = review(mturk, hit_id)
    # the two bad ones agree on Q2 = c, but only the good one is counted: its b is the plurality
    assert results(listed["HITReviewReport"], "AgreedAnswer") == {(hit_id, "Q2"): "b"}
    good_id = next(x["AssignmentId"] for x in got if plan[x["WorkerId"]] is good)
    assert [(x["TargetId"], x["Status"]) for x in actions(listed["HITReviewReport"], "approve")] == [
        (good_id, "Succeeded")
    ]
    assert {x["AssignmentId"]: x["AssignmentStatus"] for x in got}[good_id] == "Approved"


# --------------------------------------------------------------------------- listing
def test_listing_filters_by_level_and_kind_and_pages_with_next_token(market):
    mp, mturk, _ = market(3, [{"Q1": "a"}, {"Q1": "a"}, {"Q1": "b"}])
    policies = dict(
        AssignmentReviewPolicy={"PolicyName": KNOWN, "Parameters": [answer_key(Q1="a")]},
        HITReviewPolicy={"PolicyName": PLURALITY, "Parameters": [
            param("QuestionIds", "Q1"), param("QuestionAgreementThreshold", "50")]},
    )
    hit_id = mturk.create_hit(**hit_args(3, "Q1", **policies))["HIT"]["HITId"]
    mp.advance(3 * 3600)
    assert [x["AssignmentStatus"] for x in done(mturk, hit_id)] == ["Submitted"] * 3  # no thresholds, no actions

    full = review(mturk, hit_id)
    rows = [(lv, kind, r) for lv in ("Assignment", "HIT") for kind in ("ReviewResults", "ReviewActions")
            for r in full[f"{lv}ReviewReport"][kind]]
    assert len(rows) > 4
    paged, token = [], None
    while True:
        page = review(mturk, hit_id, MaxResults=3, **({"NextToken": token} if token else {}))
        got = [(lv, kind, r) for lv in ("Assignment", "HIT") for kind in ("ReviewResults", "ReviewActions")
               for r in page[f"{lv}ReviewReport"][kind]]
        if not got:
            assert "NextToken" not in page
            break
        assert len(got) <= 3 and page["NextToken"]
        paged += got
        token = page["NextToken"]
    assert sorted(map(repr, paged)) == sorted(map(repr, rows))

    only_hit = review(mturk, hit_id, PolicyLevels=["HIT"], RetrieveResults=False)
    assert "AssignmentReviewReport" not in only_hit and "AssignmentReviewPolicy" not in only_hit
    assert "ReviewResults" not in only_hit["HITReviewReport"] and only_hit["HITReviewReport"]["ReviewActions"]

    plain = mturk.create_hit(**hit_args(1, "Q1"))["HIT"]["HITId"]
    assert set(review(mturk, plain)) - {"ResponseMetadata"} == {"HITId"}


# --------------------------------------------------------------------------- refusals
REFUSED = {
    "unknown policy": dict(AssignmentReviewPolicy={"PolicyName": "ScoreMyGuesses/2011-09-01", "Parameters": []}),
    "plurality as assignment policy": dict(AssignmentReviewPolicy={"PolicyName": PLURALITY, "Parameters": [
        param("QuestionIds", "Q1"), param("QuestionAgreementThreshold", "50")]}),
    "unknown parameter": dict(AssignmentReviewPolicy={"PolicyName": KNOWN, "Parameters": [
        answer_key(Q1="a"), param("ApproveIfScoreIsHigh", "1")]}),
    "no answer key": dict(AssignmentReviewPolicy={"PolicyName": KNOWN, "Parameters": [
        param("ApproveIfKnownAnswerScoreIsAtLeast", "50")]}),
    "not an integer": dict(AssignmentReviewPolicy={"PolicyName": KNOWN, "Parameters": [
        answer_key(Q1="a"), param("ApproveIfKnownAnswerScoreIsAtLeast", "most")]}),
    "out of range": dict(AssignmentReviewPolicy={"PolicyName": KNOWN, "Parameters": [
        answer_key(Q1="a"), param("ExtendMaximumAssignments", "26")]}),
    "extend without its limits": dict(HITReviewPolicy={"PolicyName": PLURALITY, "Parameters": [
        param("QuestionIds", "Q1"), param("QuestionAgreementThreshold", "50"),
        param("ExtendIfHITAgreementScoreIsLessThan", "100")]}),
    "no question ids": dict(HITReviewPolicy={"PolicyName": PLURALITY, "Parameters": [
        param("QuestionAgreementThreshold", "50")]}),
    "not a boolean": dict(HITReviewPolicy={"PolicyName": PLURALITY, "Parameters": [
        param("QuestionIds", "Q1"), param("QuestionAgreementThreshold", "50"),
        param("DisregardAssignmentIfRejected", "maybe")]}),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_policies_mturk_refuses_are_refused_and_create_no_hit(market, case):
    _, mturk, _ = market(0, [{}])
    with pytest.raises(ClientError) as exc:
        mturk.create_hit(**hit_args(2, "Q1", **REFUSED[case]))
    assert exc.value.response["Error"]["Code"] == "RequestError"
    assert "Policy" in exc.value.response["Error"]["Message"]
    assert mturk.list_hits()["NumResults"] == 0
